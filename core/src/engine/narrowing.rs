//! Whether a target column keeps every value of the source column's type.
//!
//! Rows travel as text and each value goes through the target type's input function, which
//! for some narrower types rounds or cuts instead of failing: numeric's scale, float4, a
//! timestamp's or interval's precision, an interval's fields, `date` from a timestamp, the
//! spaces past a varchar's length, `name` past 63 bytes, `"char"` past one byte, the offset of
//! a timetz, json's duplicate keys in jsonb. Those are losses. Narrowing whose input refuses
//! loudly the values it cannot hold (int8 into int4, numeric's integer digits, bit lengths,
//! characters other than spaces past a varchar's length) keeps every value it loads: the
//! window fails atomically instead, so it is not a loss.

/// A column's type as the catalog gives it.
#[derive(Debug, Clone, Copy)]
pub struct ColumnType<'a> {
    /// `typname`, e.g. `numeric`, `_numeric` for an array.
    pub name: &'a str,
    /// `atttypmod`: -1 when the type has no modifier.
    pub modifier: i32,
}

impl<'a> ColumnType<'a> {
    /// A type with its modifier.
    pub fn new(name: &'a str, modifier: i32) -> Self {
        ColumnType { name, modifier }
    }
}

/// What the target's input would silently do to some values of the source's type, for the
/// error; None when every value is kept or refused loudly.
pub fn loss(source: ColumnType<'_>, target: ColumnType<'_>) -> Option<String> {
    let (src, smod, dst, dmod) = (source.name, source.modifier, target.name, target.modifier);
    if src == dst && smod == dmod {
        return None;
    }
    // An array's modifier is its elements', and its input applies it to each element.
    if let (Some(s), Some(d)) = (src.strip_prefix('_'), dst.strip_prefix('_')) {
        return loss(ColumnType::new(s, smod), ColumnType::new(d, dmod)).map(|l| format!("in the arrays, {l}"));
    }
    match dst {
        "numeric" => into_numeric(src, smod, dmod),
        "float4" => into_float(src, smod, 24, 6),
        "float8" => into_float(src, smod, 53, 15),
        "oid" if matches!(src, "int2" | "int4" | "int8" | "numeric" | "float4" | "float8") => {
            Some("negative values wrap around to large oids (-1 becomes 4294967295)".into())
        }
        "varchar" => into_varchar(src, smod, dmod),
        "bpchar" => into_bpchar(src, smod, dmod),
        "name" if !fits_in_name(src, smod) => Some("values longer than 63 bytes are cut to 63".into()),
        "char" if src != "char" => Some("only the first byte of each value is kept".into()),
        "date" if matches!(src, "timestamp" | "timestamptz" | "abstime") => Some("the time of day is dropped".into()),
        "timestamp" | "timestamptz" => {
            let from = match src {
                "timestamp" | "timestamptz" => seconds_precision(smod),
                // abstime has whole seconds; date none.
                _ => 0,
            };
            fraction_rounded(from, seconds_precision(dmod))
        }
        "time" | "timetz" if matches!(src, "time" | "timetz") => {
            let offset =
                (src == "timetz" && dst == "time").then(|| "the zone offset of each value is dropped".to_string());
            let rounded = fraction_rounded(seconds_precision(smod), seconds_precision(dmod));
            match (offset, rounded) {
                (Some(a), Some(b)) => Some(format!("{a}, and {b}")),
                (a, b) => a.or(b),
            }
        }
        "interval" if src == "interval" => into_interval(smod, dmod),
        "jsonb" if src == "json" => {
            Some("duplicate keys keep only their last value, and key order and spacing are not kept".into())
        }
        // bit(n) and varbit(n) input refuse a string of another length loudly.
        "bit" | "varbit" => None,
        // A type we know nothing of, with another modifier than the source's.
        _ if src == dst && dmod >= 0 => Some(
            "its modifier differs from the source's, and gptransfer cannot tell whether its input keeps every value"
                .into(),
        ),
        _ => None,
    }
}

/// `(precision, scale)` of a numeric modifier; None when unconstrained.
fn numeric_modifier(modifier: i32) -> Option<(i32, i32)> {
    // VARHDRSZ + (precision << 16 | scale); PostgreSQL 15 keeps a negative scale in 11 bits.
    let m = modifier.checked_sub(4).filter(|m| *m >= 0)?;
    Some(((m >> 16) & 0xffff, ((m & 0x7ff) ^ 1024) - 1024))
}

fn rounded_to_scale(scale: i32) -> String {
    match scale {
        0 => "values with decimals are rounded to whole numbers".into(),
        1 => "values with more than 1 decimal are rounded to 1".into(),
        s if s > 0 => format!("values with more than {s} decimals are rounded to {s}"),
        s => format!("values are rounded to multiples of 1{}", "0".repeat(s.unsigned_abs() as usize)),
    }
}

fn into_numeric(src: &str, smod: i32, dmod: i32) -> Option<String> {
    // Unconstrained numeric holds any decimal; overflow of the integer digits errors loudly.
    let (_, scale) = numeric_modifier(dmod)?;
    let more_decimals = match src {
        "numeric" => !matches!(numeric_modifier(smod), Some((_, s)) if s <= scale),
        "int2" | "int4" | "int8" | "oid" => scale < 0,
        "float4" | "float8" => true,
        _ => false,
    };
    more_decimals.then(|| rounded_to_scale(scale))
}

/// Into a float with `bits` of mantissa, which holds any decimal of `digits` significant digits.
fn into_float(src: &str, smod: i32, bits: u32, digits: i32) -> Option<String> {
    let beyond = |b: u32| format!("integers beyond ±{} (2^{b}) are rounded", 1u64 << b);
    match src {
        "float8" if bits < 53 => Some("values are rounded to float4 precision (about 7 significant digits)".into()),
        "int4" | "oid" if bits < 32 => Some(beyond(bits)),
        "int8" => Some(beyond(bits)),
        "numeric" if !matches!(numeric_modifier(smod), Some((p, _)) if p <= digits) => {
            Some(format!("values with more than {digits} significant digits are rounded"))
        }
        _ => None,
    }
}

/// The most characters of a source value whose trailing spaces mean something.
enum Spaces {
    /// Its text never ends in a space that matters (numbers, times, …; bpchar's padding).
    Never,
    /// At most this many characters.
    UpTo(i32),
    /// Any length.
    Unbounded,
}

fn trailing_spaces(src: &str, smod: i32) -> Spaces {
    match src {
        "int2" | "int4" | "int8" | "oid" | "numeric" | "float4" | "float8" | "bool" | "date" | "time" | "timetz"
        | "timestamp" | "timestamptz" | "interval" | "abstime" | "reltime" | "uuid" | "bytea" | "inet" | "cidr"
        | "macaddr" | "jsonb" | "bit" | "varbit" | "money" => Spaces::Never,
        // bpchar's trailing spaces are padding: it ignores them itself.
        "bpchar" => Spaces::Never,
        "varchar" => char_length(smod).map_or(Spaces::Unbounded, Spaces::UpTo),
        "name" => Spaces::UpTo(63),
        "char" => Spaces::UpTo(1),
        _ => Spaces::Unbounded,
    }
}

/// The length of a varchar or bpchar modifier; None when unconstrained.
fn char_length(modifier: i32) -> Option<i32> {
    modifier.checked_sub(4).filter(|n| *n >= 0)
}

fn into_varchar(src: &str, smod: i32, dmod: i32) -> Option<String> {
    let n = char_length(dmod)?;
    match trailing_spaces(src, smod) {
        Spaces::Never => None,
        Spaces::UpTo(m) if m <= n => None,
        _ => Some(format!(
            "values longer than {n} characters fail the load, except where only spaces follow character {n}: those \
             are cut silently"
        )),
    }
}

fn into_bpchar(src: &str, smod: i32, dmod: i32) -> Option<String> {
    // bpchar without a length stores the value as it comes.
    let n = char_length(dmod)?;
    match trailing_spaces(src, smod) {
        Spaces::Never => None,
        _ => Some(format!(
            "values are padded with spaces to {n} characters (and spaces past character {n} cut), so trailing spaces \
             no longer tell values apart"
        )),
    }
}

fn fits_in_name(src: &str, smod: i32) -> bool {
    match src {
        "name" | "char" | "bool" | "int2" | "int4" | "int8" | "oid" | "float4" | "float8" | "date" | "time"
        | "timetz" | "timestamp" | "timestamptz" | "abstime" | "uuid" => true,
        // Up to 4 bytes a character in UTF-8.
        "varchar" | "bpchar" => char_length(smod).is_some_and(|n| n * 4 <= 63),
        "numeric" => numeric_modifier(smod).is_some_and(|(p, _)| p + 3 <= 63),
        _ => false,
    }
}

/// Digits of a second a timestamp, time or interval modifier keeps (6 when unconstrained).
fn seconds_precision(modifier: i32) -> i32 {
    if modifier < 0 {
        6
    } else {
        // A time's modifier is the precision; an interval's holds it in its low 16 bits.
        let p = modifier & 0xffff;
        if p == 0xffff {
            6
        } else {
            p.min(6)
        }
    }
}

fn fraction_rounded(from: i32, to: i32) -> Option<String> {
    (from > to).then(|| match to {
        0 => "fractions of a second are rounded to whole seconds".to_string(),
        1 => "fractions of a second are rounded to 1 decimal".to_string(),
        p => format!("fractions of a second are rounded to {p} decimals"),
    })
}

/// The finest field an interval modifier keeps: 0 years … 5 seconds.
fn interval_finest(modifier: i32) -> u8 {
    if modifier < 0 {
        return 5;
    }
    let range = (modifier >> 16) & 0x7fff;
    // Bits of the fields (datetime.h): MONTH 1, YEAR 2, DAY 3, HOUR 10, MINUTE 11, SECOND 12.
    [(12, 5), (11, 4), (10, 3), (3, 2), (1, 1), (2, 0)]
        .into_iter()
        .find(|(bit, _)| range & (1 << bit) != 0)
        .map_or(5, |(_, field)| field)
}

fn into_interval(smod: i32, dmod: i32) -> Option<String> {
    let (from, to) = (interval_finest(smod), interval_finest(dmod));
    if from > to {
        return Some(
            match to {
                0 => "months, days and times are dropped (whole years are kept)",
                1 => "days and times are dropped",
                2 => "the time part is dropped",
                3 => "minutes and seconds are dropped",
                _ => "seconds are dropped",
            }
            .into(),
        );
    }
    if to == 5 && from == 5 {
        return fraction_rounded(seconds_precision(smod), seconds_precision(dmod));
    }
    None
}

/// A column crossing between `timestamp` and `timestamptz`, whose values then depend on the
/// session's TimeZone (the same on both clusters: the table's `timezone`, else the source's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneCrossing {
    /// `timestamptz` into `timestamp`: the source prints each instant in its session's zone,
    /// with its offset, and the target's input drops the offset.
    DropsOffset,
    /// `timestamp` into `timestamptz`: the target's input reads each value as wall-clock time
    /// in its session's zone.
    ReadsWallTime,
    /// `time` into `timetz`: the target's input gives each value the UTC offset its session's
    /// zone has on the day of the load.
    TakesTodaysOffset,
}

/// Whether a source column of `source` into a target column of `target` crosses zones.
pub fn zone_crossing(source: &str, target: &str) -> Option<ZoneCrossing> {
    match (source, target) {
        ("timestamptz", "timestamp") => Some(ZoneCrossing::DropsOffset),
        ("timestamp", "timestamptz") => Some(ZoneCrossing::ReadsWallTime),
        ("time", "timetz") => Some(ZoneCrossing::TakesTodaysOffset),
        _ => None,
    }
}

/// A session's TimeZone and the years in which it moves its clocks, ascending
/// ([`crate::dialect::sql::CLOCK_CHANGES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockChanges {
    /// The zone's name, as the session shows it.
    pub zone: String,
    /// Years in which its UTC offset changes; empty for UTC and fixed offsets.
    pub years: Vec<i32>,
}

/// What a zone crossing does to some values, for the error; None in a zone whose clocks never
/// move (every wall-clock time there is one instant and back).
pub fn zone_loss(crossing: ZoneCrossing, changes: &ClockChanges) -> Option<String> {
    let (first, last) = (changes.years.first()?, changes.years.last()?);
    let when = if first == last {
        format!("in {first}")
    } else {
        format!("in {} years from {first} to {last}", changes.years.len())
    };
    let zone = &changes.zone;
    Some(match crossing {
        ZoneCrossing::DropsOffset => format!(
            "each value becomes its wall-clock time in the session's TimeZone {zone:?}, which moves its clocks \
             ({when}): the two instants of an hour its clocks go back become one value (a job `timezone` that never moves its clocks, such as \"UTC\", keeps every value)"
        ),
        ZoneCrossing::ReadsWallTime => format!(
            "each value is read as wall-clock time in the session's TimeZone {zone:?}, which moves its clocks \
             ({when}): a time in an hour its clocks skip becomes the instant of the hour after, which another value \
             may hold (a job `timezone` that never moves its clocks, such as \"UTC\", keeps every value)"
        ),
        ZoneCrossing::TakesTodaysOffset => format!(
            "each value gets the UTC offset the session's TimeZone {zone:?} has on the day it is loaded, and that \
             zone moves its clocks ({when}): one time gets another offset in another season, and a compare then \
             sees it changed (a job `timezone` that never moves its clocks, such as \"UTC\", gives every value \
             one offset)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{loss, zone_crossing, zone_loss, ClockChanges, ColumnType, ZoneCrossing};

    #[test]
    fn zone_crossings_lose_only_where_the_clocks_move() {
        assert_eq!(zone_crossing("timestamptz", "timestamp"), Some(ZoneCrossing::DropsOffset));
        assert_eq!(zone_crossing("timestamp", "timestamptz"), Some(ZoneCrossing::ReadsWallTime));
        assert_eq!(zone_crossing("time", "timetz"), Some(ZoneCrossing::TakesTodaysOffset));
        assert_eq!(zone_crossing("timestamptz", "timestamptz"), None);
        assert_eq!(zone_crossing("date", "timestamptz"), None);
        let utc = ClockChanges { zone: "UTC".into(), years: vec![] };
        assert_eq!(zone_loss(ZoneCrossing::DropsOffset, &utc), None);
        let ny = ClockChanges { zone: "America/New_York".into(), years: vec![1918, 1919, 2100] };
        let what = zone_loss(ZoneCrossing::ReadsWallTime, &ny).unwrap_or_default();
        assert!(what.contains("\"America/New_York\", which moves its clocks (in 3 years from 1918 to 2100)"), "{what}");
        let once = ClockChanges { zone: "Asia/Kolkata".into(), years: vec![1942] };
        assert!(zone_loss(ZoneCrossing::DropsOffset, &once).unwrap_or_default().contains("(in 1942)"));
    }

    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    fn lossy(src: (&str, i32), dst: (&str, i32)) -> Option<String> {
        loss(ColumnType::new(src.0, src.1), ColumnType::new(dst.0, dst.1))
    }

    const NONE: i32 = -1;
    const YEAR_TO_MONTH: i32 = 458751;
    const DAY_TO_SECOND_2: i32 = 470286338;
    const INTERVAL_3: i32 = 2147418115;

    #[test]
    fn numbers() {
        assert_eq!(
            lossy(("numeric", numeric(10, 3)), ("numeric", numeric(10, 1))).as_deref(),
            Some("values with more than 1 decimal are rounded to 1")
        );
        assert!(lossy(("numeric", NONE), ("numeric", numeric(12, 2))).is_some());
        assert!(lossy(("numeric", numeric(10, 1)), ("numeric", numeric(10, 3))).is_none());
        assert!(lossy(("numeric", numeric(10, 2)), ("numeric", NONE)).is_none());
        // Only the integer digits shrink: overflow errors loudly.
        assert!(lossy(("numeric", numeric(12, 2)), ("numeric", numeric(8, 2))).is_none());
        assert!(lossy(("int8", NONE), ("numeric", numeric(8, 2))).is_none());
        assert_eq!(
            lossy(("int4", NONE), ("numeric", numeric(5, -2))).as_deref(),
            Some("values are rounded to multiples of 100")
        );
        assert!(lossy(("float8", NONE), ("numeric", numeric(20, 4))).is_some());
        assert!(lossy(("float8", NONE), ("numeric", NONE)).is_none());
        assert!(lossy(("int8", NONE), ("int4", NONE)).is_none());
        assert!(lossy(("int2", NONE), ("int8", NONE)).is_none());
        assert!(lossy(("numeric", numeric(10, 2)), ("int4", NONE)).is_none());
        assert!(lossy(("float8", NONE), ("float4", NONE)).is_some());
        assert!(lossy(("float4", NONE), ("float8", NONE)).is_none());
        assert!(lossy(("int2", NONE), ("float4", NONE)).is_none());
        assert!(lossy(("int4", NONE), ("float4", NONE)).is_some());
        assert!(lossy(("int4", NONE), ("float8", NONE)).is_none());
        assert!(lossy(("int8", NONE), ("float8", NONE)).is_some());
        assert!(lossy(("numeric", NONE), ("float8", NONE)).is_some());
        assert!(lossy(("numeric", numeric(15, 3)), ("float8", NONE)).is_none());
        assert!(lossy(("numeric", numeric(7, 3)), ("float4", NONE)).is_some());
        assert!(lossy(("int4", NONE), ("oid", NONE)).is_some());
        assert!(lossy(("oid", NONE), ("int8", NONE)).is_none());
        assert!(lossy(("_numeric", numeric(10, 3)), ("_numeric", numeric(10, 1))).is_some());
        assert!(lossy(("_numeric", numeric(10, 1)), ("_numeric", NONE)).is_none());
    }

    #[test]
    fn text() {
        assert!(lossy(("varchar", 14), ("varchar", 6)).is_some());
        assert!(lossy(("varchar", 6), ("varchar", 14)).is_none());
        assert!(lossy(("text", NONE), ("varchar", 9)).is_some());
        assert!(lossy(("text", NONE), ("varchar", NONE)).is_none());
        assert!(lossy(("varchar", 14), ("text", NONE)).is_none());
        assert!(lossy(("int8", NONE), ("varchar", 9)).is_none());
        // bpchar's padding means nothing: cutting it loses nothing.
        assert!(lossy(("bpchar", 9), ("bpchar", 7)).is_none());
        assert!(lossy(("bpchar", 9), ("varchar", 6)).is_none());
        assert!(lossy(("varchar", 9), ("bpchar", 9)).is_some());
        assert!(lossy(("text", NONE), ("bpchar", NONE)).is_none());
        assert!(lossy(("int4", NONE), ("bpchar", 8)).is_none());
        assert!(lossy(("text", NONE), ("name", NONE)).is_some());
        assert!(lossy(("int8", NONE), ("name", NONE)).is_none());
        assert!(lossy(("varchar", 14), ("name", NONE)).is_none());
        assert!(lossy(("text", NONE), ("char", NONE)).is_some());
        assert!(lossy(("json", NONE), ("jsonb", NONE)).is_some());
        assert!(lossy(("jsonb", NONE), ("json", NONE)).is_none());
        assert!(lossy(("anything", NONE), ("text", NONE)).is_none());
    }

    #[test]
    fn times() {
        assert_eq!(
            lossy(("timestamp", NONE), ("timestamp", 0)).as_deref(),
            Some("fractions of a second are rounded to whole seconds")
        );
        assert!(lossy(("timestamp", 0), ("timestamp", 3)).is_none());
        assert!(lossy(("timestamp", 3), ("timestamptz", NONE)).is_none());
        assert!(lossy(("timestamptz", 6), ("timestamptz", 2)).is_some());
        assert!(lossy(("date", NONE), ("timestamp", 0)).is_none());
        assert!(lossy(("abstime", NONE), ("timestamptz", 0)).is_none());
        assert!(lossy(("timestamp", NONE), ("date", NONE)).is_some());
        assert!(lossy(("time", NONE), ("time", 0)).is_some());
        assert!(lossy(("time", 2), ("time", NONE)).is_none());
        assert!(lossy(("timetz", NONE), ("time", NONE)).is_some());
        assert!(lossy(("time", NONE), ("timetz", NONE)).is_none());
        assert_eq!(
            lossy(("timetz", NONE), ("time", 1)).as_deref(),
            Some("the zone offset of each value is dropped, and fractions of a second are rounded to 1 decimal")
        );
        assert_eq!(
            lossy(("interval", NONE), ("interval", YEAR_TO_MONTH)).as_deref(),
            Some("days and times are dropped")
        );
        assert!(lossy(("interval", YEAR_TO_MONTH), ("interval", NONE)).is_none());
        assert!(lossy(("interval", INTERVAL_3), ("interval", DAY_TO_SECOND_2)).is_some());
        assert!(lossy(("interval", DAY_TO_SECOND_2), ("interval", INTERVAL_3)).is_none());
        assert!(lossy(("interval", YEAR_TO_MONTH), ("interval", DAY_TO_SECOND_2)).is_none());
    }

    #[test]
    fn bits_and_unknown_types() {
        // bit and varbit input refuse another length loudly.
        assert!(lossy(("bit", 3), ("bit", 4)).is_none());
        assert!(lossy(("varbit", 5), ("varbit", 3)).is_none());
        assert!(lossy(("geometry", 1107460), ("geometry", 1107464)).is_some());
        assert!(lossy(("geometry", 1107460), ("geometry", NONE)).is_none());
    }
}
