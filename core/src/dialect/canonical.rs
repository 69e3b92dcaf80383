//! The canonical form of a row for compare: the bytes each row is hashed by, identical for
//! equal data on GP4 (8.2), GP6 (9.4), GP7 and PostgreSQL 12+, whatever the server's or
//! database's DateStyle, TimeZone, extra_float_digits, bytea_output or datetime build. Only
//! functions that exist on 8.2 are used.
//!
//! A row is `record_send(ROW(…))` of its columns ([`row_bytes`]): the binary send form, which
//! for most types is the same on every version and costs a fraction of their text (one
//! function call per row on Greenplum 6 instead of several per field):
//! - integers (widened to `int8`), floats (their IEEE bits), numeric, bool, bytea, date and uuid
//!   as they are;
//! - date/time types as `bytea` of the integer-datetime build's form, computed on a
//!   float-datetime server (8.2), see [`datetime_bytes`];
//! - every other type as its canonical text ([`text_expr`]): text and varchar as they are,
//!   arrays and the rest through their output function.
//!
//! `record_send` frames each field with its type's OID and length (-1 for NULL), so no value
//! can imitate a NULL or a neighbour.
//!
//! Text is hashed as UTF-8 bytes: every session runs with `client_encoding = 'UTF8'`, and a
//! text value is converted to the client encoding when sent — also inside `record_send` — so a
//! database with another real encoding (EUC_CN, LATIN1: [`StoredText::Recode`]) hashes its
//! rows' UTF-8 form; a legacy SQL_ASCII database holding GBK/GB18030 bytes
//! ([`StoredText::Convert`]), which the server cannot convert, has its text converted to UTF-8
//! in SQL first.
//!
//! The session runs with `DateStyle = 'ISO, MDY'` ([`SESSION_SETUP`]) for the types hashed
//! by their text.

use super::quote_ident;

/// How one side's text columns are read for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoredText {
    /// As the server holds them (the server's encoding is the text's).
    #[default]
    AsIs,
    /// Bytes in encoding `from` (GBK, GB18030) that a SQL_ASCII database cannot convert by
    /// itself: converted to UTF-8 in the database. `kernel_8_2`: 8.2's `convert(text, …)`
    /// (8.3 made it take and give bytea).
    Convert {
        /// PostgreSQL's name of the stored encoding.
        from: &'static str,
        /// The server is 8.2 (GP4).
        kernel_8_2: bool,
    },
    /// A real server encoding other than UTF8: text is hashed in its UTF-8 form, which the
    /// server converts it to on its way out (the session's client encoding).
    Recode {
        /// The server is 8.2 (GP4).
        kernel_8_2: bool,
    },
}

impl StoredText {
    /// The side of a database whose `server_encoding` is `encoding`; `stored` is the encoding a
    /// SQL_ASCII database's text is in, when the source says (`gp4`'s `source_encoding`).
    pub fn for_server(encoding: &str, stored: Option<&'static str>, kernel_8_2: bool) -> StoredText {
        match (encoding.to_ascii_uppercase().as_str(), stored) {
            ("UTF8" | "UNICODE", _) | ("SQL_ASCII", None) => StoredText::AsIs,
            ("SQL_ASCII", Some(from)) => StoredText::Convert { from, kernel_8_2 },
            _ => StoredText::Recode { kernel_8_2 },
        }
    }

    /// `text` (a text expression) as it hashes: converted to UTF-8 in SQL when the server
    /// cannot do it (GBK/GB18030 bytes in SQL_ASCII). The result is text holding UTF-8 bytes
    /// (a SQL_ASCII database takes any bytes).
    fn value(self, text: &str) -> String {
        match self {
            StoredText::AsIs | StoredText::Recode { .. } => text.to_string(),
            StoredText::Convert { from, kernel_8_2 } => {
                let whole = convert_whole(text, from, kernel_8_2);
                if from == "GB18030" {
                    supplementary_aware(text, &whole, kernel_8_2)
                } else {
                    whole
                }
            }
        }
    }
}

/// `text` (bytes in encoding `from`) converted to UTF-8 by the server in one call.
fn convert_whole(text: &str, from: &str, kernel_8_2: bool) -> String {
    if kernel_8_2 {
        format!("convert({text}, '{from}', 'UTF8')")
    } else {
        format!("convert_from(convert(convert_to({text}, 'SQL_ASCII'), '{from}', 'UTF8'), 'SQL_ASCII')")
    }
}

/// 8.2: the bytes of a text as bytea (8.2 has neither `convert_to` nor a cast): `decode(…,
/// 'escape')` reads backslashes as escapes, so they are doubled first (standard strings).
fn text_bytes_8_2(text: &str) -> String {
    format!(r"decode(replace({text}, '\', '\\'), 'escape')")
}

/// A GB18030 lead byte (0x81–0xFE), as two hex digits.
const HEX_LEAD: &str = "(?:8[1-9a-f]|9[0-9a-f]|[a-e][0-9a-f]|f[0-9a-e])";
/// The lead byte of a 4-byte GB18030 sequence above U+FFFF (0x90–0xE3).
const HEX_SUPPLEMENTARY_LEAD: &str = "(?:9[0-9a-f]|[a-d][0-9a-f]|e[0-3])";
/// The second byte of a 2-byte GB18030 character (0x40–0x7E, 0x80–0xFE).
const HEX_TRAIL: &str = "(?:[4-6][0-9a-f]|7[0-9a-e]|[89a-e][0-9a-f]|f[0-9a-e])";

/// GB18030 `text` in UTF-8, characters above U+FFFF included, which neither 8.2's nor 9.4's
/// (GP6's) conversion maps (`character 0x95328236 of encoding "GB18030" has no equivalent in
/// "UTF8"`), although the transfer decodes them. Their 4-byte codes are algorithmic
/// (U+10000 + a linear index over the bytes 0x90308130…0xE3329A35), so a value holding one is
/// converted piece by piece: its bytes as hex, cut into characters by a regular expression
/// (a character above U+FFFF in group 1, any other in group 2, an invalid byte alone), each
/// piece converted by the server or computed here, and the UTF-8 hex made text again. Values
/// without such a character (nearly all) take the one-call conversion (`whole`). Only
/// functions 8.2 has; no function is created on the source.
fn supplementary_aware(text: &str, whole: &str, kernel_8_2: bool) -> String {
    let (lead, supp, trail) = (HEX_LEAD, HEX_SUPPLEMENTARY_LEAD, HEX_TRAIL);
    let digit = "3[0-9]";
    let pattern = format!("({supp}{digit}{lead}{digit})|({lead}{digit}{lead}{digit}|{lead}{trail}|[0-9a-f][0-9a-f])");
    let byte = |n: usize| format!("bit_in(textout('x' || substr(a[i], {}, 2)), 0, 8)::int", 2 * n - 1);
    let code_point = format!(
        "65536 + ((({} - 144) * 10 + {} - 48) * 126 + {} - 129) * 10 + {} - 48",
        byte(1),
        byte(2),
        byte(3),
        byte(4)
    );
    // A piece other than a character above U+FFFF, as UTF-8 hex: ASCII as it is, the rest
    // converted by the server (an invalid byte fails as it would in one call).
    let other = "substr(a[i], 2)";
    let other_utf8 = if kernel_8_2 {
        // 8.2: convert(text) only; bytea becomes text through escape encoding, which doubles
        // backslashes (and would write NUL as \000, which text cannot hold anyway).
        format!(
            r"encode({}, 'hex')",
            text_bytes_8_2(&format!(
                r"convert(replace(encode(decode({other}, 'hex'), 'escape'), '\\', '\'), 'GB18030', 'UTF8')"
            ))
        )
    } else {
        format!("encode(convert(decode({other}, 'hex'), 'GB18030', 'UTF8'), 'hex')")
    };
    let utf8_hex = format!(
        "array_to_string(ARRAY(SELECT CASE \
           WHEN substr(a[i], 1, 1) <> ';' THEN \
             to_hex(240 + cp / 262144) || to_hex(128 + cp / 4096 % 64) || to_hex(128 + cp / 64 % 64) || to_hex(128 + cp % 64) \
           WHEN {other} < '80' THEN {other} \
           ELSE {other_utf8} END \
         FROM (SELECT i, {code_point} AS cp FROM generate_series(2, array_upper(a, 1)) AS i) AS piece ORDER BY i), '')"
    );
    // The stored bytes as bytea: never through textsend, which converts to the client
    // encoding (UTF8), and 9.x+ check the bytes on the way ("invalid byte sequence").
    let bytes = if kernel_8_2 { text_bytes_8_2(text) } else { format!("convert_to({text}, 'SQL_ASCII')") };
    let as_text = if kernel_8_2 {
        format!(r"replace(encode(decode({utf8_hex}, 'hex'), 'escape'), '\\', '\')")
    } else {
        format!("convert_from(decode({utf8_hex}, 'hex'), 'SQL_ASCII')")
    };
    format!(
        "CASE WHEN {text} ~ '[\\x90-\\xe3][\\x30-\\x39][\\x81-\\xfe][\\x30-\\x39]' THEN \
           (SELECT {as_text} FROM (SELECT string_to_array(regexp_replace(encode({bytes}, 'hex'), '{pattern}', ',\\1;\\2', 'g'), ',') AS a) AS pieces) \
         ELSE {whole} END"
    )
}

/// What the comparator runs before its queries (cheap, and idempotent). The ISO output of
/// date and timestamp is the only session-dependent text the canonical form relies on.
pub const SESSION_SETUP: &str = "SET DateStyle = 'ISO, MDY'";

/// The SQL expression of one column as it goes into the row's [`row_bytes`]: a value whose
/// binary send form is the same on every server for the same value (NULL stays NULL).
///
/// Binary forms that are the same everywhere are used as they are (integers widened to
/// `int8`, so `int4` and `int8` columns holding the same numbers agree, as their text did;
/// floats are their IEEE bits; `numeric` its digits, weight, sign and scale; `date` its day
/// number). Date/time types are sent as `bytea` holding the integer-datetime build's binary
/// form (µs in an `int8`), computed on a float-datetime server ([`float_datetimes`]); see
/// [`datetime_bytes`]. Every other type is its canonical text ([`text_expr`]), sent as UTF-8
/// (every session runs with `client_encoding = 'UTF8'`, and a `text` value is converted to the
/// client encoding on its way out, also inside `record_send`).
pub fn binary_expr(column: &str, type_name: &str, stored: StoredText, float_datetimes: bool) -> String {
    binary_expr_sql(&quote_ident(column), type_name, stored, float_datetimes)
}

/// [`binary_expr`] of a SQL expression `c` of type `type_name` (a column quoted, or a cast).
fn binary_expr_sql(c: &str, type_name: &str, stored: StoredText, float_datetimes: bool) -> String {
    let c = c.to_string();
    match type_name {
        // Cast to the very type: nothing for a column of it, but a column of a domain over it
        // goes as that type, which `record_send` frames with the type's OID (the same on every
        // server) instead of the domain's (the cluster's own).
        "int8" | "float4" | "float8" | "numeric" | "bool" | "bytea" | "date" | "uuid" => format!("{c}::{type_name}"),
        "int2" | "int4" => format!("{c}::int8"),
        // As text: a varchar and a text column holding the same string agree.
        "varchar" => stored.value(&format!("{c}::text")),
        "timestamp" | "timestamptz" | "time" | "interval" => datetime_bytes(&c, type_name, float_datetimes),
        _ => text_expr_sql(&c, type_name, stored),
    }
}

/// Whether a column of type `a` on one side and `b` on the other has the same
/// [`binary_expr`] for the same value: the same type, or both integers (widened to `int8`), or
/// `text` and `varchar`. Otherwise the transfer loaded the column through its text (an `int4`
/// into `numeric`, a number into `text`), and both sides hash that text instead.
pub fn same_binary_form(a: &str, b: &str) -> bool {
    fn class(t: &str) -> &str {
        match t {
            "int2" | "int4" | "int8" => "int8",
            "text" | "varchar" => "text",
            t => t,
        }
    }
    class(a) == class(b)
}

/// A column one side hashes read into the other side's type. On the source: its value as the
/// transfer carried it ([`carried_text_expr`]) read into the target's declared type, the very
/// conversion the load made (the target's input function with its modifier: `numeric(10,1)`
/// rounds, `char(4)` pads, `date` into `timestamp` adds midnight), so a row loaded into another
/// type, widened or (with `lossy_columns`) narrowed, hashes alike on both sides in the target
/// type's binary form. On the target: a float column of the source, read back into the float
/// type, whose exact text gives the same bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastTo {
    /// The column.
    pub column: String,
    /// The other side's declared type, as `format_type` prints it (`numeric(10,1)`).
    pub type_text: String,
    /// Its `typname` (`numeric`), which picks the binary form.
    pub type_name: String,
}

/// Whether a server of `kernel` (82, 94, 120, …) has built-in type `type_name` (or an array of
/// it), so a [`CastTo`] into it runs there. Others (user-defined types, domains, types newer
/// than the server) are compared through the carried text instead.
pub fn built_in_on(kernel: u32, type_name: &str) -> bool {
    let element = type_name.strip_prefix('_').unwrap_or(type_name);
    match element {
        "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" | "oid" | "text" | "varchar" | "bpchar" | "name"
        | "char" | "bool" | "bytea" | "date" | "timestamp" | "timestamptz" | "time" | "timetz" | "interval" | "bit"
        | "varbit" | "inet" | "cidr" | "macaddr" | "money" => true,
        "uuid" => kernel >= 83,
        "json" => kernel >= 92,
        "jsonb" => kernel >= 94,
        _ => false,
    }
}

/// A column as text the way COPY's text output wrote it (the session's extra_float_digits,
/// DateStyle and bytea_output, as in the transfer): what a target column of another type
/// received and holds. `bool` prints `t`/`f` there (its cast to text says `true`), and `char(n)`
/// keeps its padding (its cast to text trims it).
pub fn carried_text_expr(column: &str, type_name: &str, stored: StoredText) -> String {
    let c = quote_ident(column);
    match type_name {
        "bool" => format!("CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END"),
        "bpchar" => stored.value(&format!("textin(bpcharout({c}))")),
        "text" | "varchar" => stored.value(&format!("{c}::text")),
        // 8.2 has no cast from an array to text.
        t if t.starts_with('_') => format!("textin(array_out({c}))"),
        _ => format!("{c}::text"),
    }
}

/// A date/time value as `bytea`: the integer-datetime build's binary form (`timestamp_send`
/// etc.: µs since 2000-01-01 in an `int8`, ±infinity as the `int8` extremes; `interval`: µs,
/// days, months). A float-datetime build (8.2, possibly GP4) holds float seconds, and sends
/// them; there the same integers are computed from the fields the server itself prints, so
/// they equal what its text output (which the transfer carried) says:
/// - the fields come from `timestamp2tm`, which rounds the fraction to µs (`TSROUND`) and
///   carries the rounding into seconds, minutes… ; the text prints `sec + fsec` as `%09.6f`,
///   so `round(second × 10⁶)` is the printed µs;
/// - before year 1 a float build prints no fraction (`tm_sec` alone), so the fraction is
///   dropped there as well.
pub fn datetime_bytes(c: &str, type_name: &str, float_datetimes: bool) -> String {
    if !float_datetimes {
        let send = match type_name {
            "timestamp" => "timestamp_send",
            "timestamptz" => "timestamptz_send",
            "time" => "time_send",
            _ => "interval_send",
        };
        return format!("{send}({c})");
    }
    let micros_of_day = |v: &str, seconds: &str| {
        format!("(date_part('hour', {v}) * 3600 + date_part('minute', {v}) * 60)::int8 * 1000000 + ({seconds})::int8")
    };
    match type_name {
        "timestamp" | "timestamptz" => {
            let v = if type_name == "timestamp" { c.to_string() } else { format!("({c} AT TIME ZONE 'UTC')") };
            let seconds = format!(
                "CASE WHEN {v} >= '0001-01-01 00:00:00'::timestamp THEN round(date_part('second', {v}) * 1000000) \
                 ELSE floor(date_part('second', {v})) * 1000000 END"
            );
            format!(
                "CASE WHEN {v} = 'infinity'::timestamp THEN int8send(9223372036854775807) \
                 WHEN {v} = '-infinity'::timestamp THEN int8send(-9223372036854775807 - 1) \
                 ELSE int8send(({v}::date - date '2000-01-01')::int8 * 86400000000 + {}) END",
                micros_of_day(&v, &seconds)
            )
        }
        "time" => format!("int8send(round(date_part('epoch', {c}) * 1000000)::int8)"),
        // interval_send: time (µs), days, months.
        _ => format!(
            "int8send({}) || int4send(date_part('day', {c})::int4) || int4send((date_part('year', {c}) * 12 + date_part('month', {c}))::int4)",
            micros_of_day(c, &format!("round(date_part('second', {c}) * 1000000)"))
        ),
    }
}

/// The value's canonical text (NULL stays NULL).
///
/// Dates and timestamps, with `DateStyle = 'ISO'`:
/// - `date` output is `YYYY-MM-DD`, `YYYY-MM-DD BC`, `infinity` or `-infinity` on every version
///   from 8.2 (which has no infinite dates) to 17 (`EncodeDateOnly`, ISO branch, unchanged).
/// - `timestamp` output is `YYYY-MM-DD HH:MM:SS` plus `.` and the microseconds when they are
///   not 0, plus ` BC` before year 1. The fraction is where versions differ: 8.x trims
///   trailing zeros but keeps at least two digits (`…:05.50`), newer versions trim them all
///   (`…:05.5`); float-datetime builds (possible on GP4) print `%09.6f` and trim the same way,
///   but print no fraction at all before year 1. So from year 1 on the canonical text is the
///   output with its trailing zeros removed (`rtrim(…, '0')`): every variant gives the same
///   text, and it is still one-to-one, because seconds always have two digits and a fraction
///   ends in a non-zero digit (`…:10` → `…:1`, `…:00` → `…:`, `…:05.50` → `…:05.5`).
///   `infinity` has no trailing zero. Before year 1 (and for `-infinity`, which `to_char`
///   renders as NULL) the explicit `to_char` form is used, as before.
pub fn text_expr(column: &str, type_name: &str, stored: StoredText) -> String {
    text_expr_sql(&quote_ident(column), type_name, stored)
}

/// [`text_expr`] of a SQL expression `c` of type `type_name`.
fn text_expr_sql(c: &str, type_name: &str, stored: StoredText) -> String {
    let c = c.to_string();
    match type_name {
        // The IEEE bits: exact, and free of float formatting, which changed in PostgreSQL 12.
        "float8" => format!("encode(float8send({c}), 'hex')"),
        "float4" => format!("encode(float4send({c}), 'hex')"),
        "timestamp" => timestamp_text(&c, &format!("{c} >= '0001-01-01 00:00:00'::timestamp")),
        // The instant, in UTC: independent of the session and server TimeZone.
        "timestamptz" => timestamp_text(
            &format!("({c} AT TIME ZONE 'UTC')"),
            &format!("{c} >= '0001-01-01 00:00:00+00'::timestamptz"),
        ),
        "date" => format!("{c}::text"),
        "bool" => format!("CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END"),
        // Independent of bytea_output (hex on 9.0+, escape on 8.x).
        "bytea" => format!("encode({c}, 'hex')"),
        // Exact decimal text; equal declared scale gives equal text on every version.
        "numeric" | "int2" | "int4" | "int8" | "oid" => format!("{c}::text"),
        // text and varchar are text already (no conversion at all, unless the bytes are in
        // an encoding the server does not know); the cast is for a domain over them, as above.
        "text" | "varchar" => stored.value(&format!("{c}::text")),
        "bpchar" => stored.value(&format!("{c}::text")),
        // Float arrays: their dimensions, then each element's bits (text output of their
        // elements differs between versions like a float's). First dimension only.
        "_float4" | "_float8" => {
            let send = if type_name == "_float4" { "float4send" } else { "float8send" };
            format!(
                "CASE WHEN {c} IS NOT NULL THEN coalesce(array_dims({c}), '') || ':' || coalesce(array_to_string(ARRAY(\
                 SELECT coalesce(encode({send}({c}[i]), 'hex'), 'N') \
                 FROM generate_series(array_lower({c}, 1), array_upper({c}, 1)) AS i ORDER BY i), ','), '') END"
            )
        }
        // 8.2 has no cast from an array to text (I/O casts came with 8.3); the output function
        // is the same text everywhere.
        t if t.starts_with('_') => format!("textin(array_out({c}))"),
        _ => format!("{c}::text"),
    }
}

/// `value` is a timestamp expression; `from_year_1` says it is at least 0001-01-01 (or
/// +infinity). See [`text_expr`].
fn timestamp_text(value: &str, from_year_1: &str) -> String {
    format!(
        "CASE WHEN {from_year_1} THEN rtrim({value}::text, '0') \
         ELSE coalesce(to_char({value}, 'YYYY-MM-DD HH24:MI:SS.US BC'), {value}::text) END"
    )
}

/// A value's text for reports and alarm keys: explicit and readable (`to_char`), never
/// hashed, so its cost does not matter (only differing slices are listed).
fn display_expr(c: &str, type_name: &str, stored: StoredText) -> String {
    let c = c.to_string();
    match type_name {
        "timestamp" => format!("coalesce(to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US BC'), {c}::text)"),
        "timestamptz" => format!("coalesce(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US BC'), {c}::text)"),
        "date" => format!("coalesce(to_char({c}, 'YYYY-MM-DD BC'), {c}::text)"),
        "text" | "varchar" => stored.value(&format!("{c}::text")),
        _ => text_expr_sql(&c, type_name, stored),
    }
}

/// A readable key, `col=value, col=value`, for reports and alarms. A key column in `cast_to`
/// is shown read into that type, as its row is hashed ([`row_bytes`]), so both sides name a
/// row by the same key.
pub fn key_text(columns: &[(String, String)], stored: StoredText, cast_to: &[CastTo]) -> String {
    columns
        .iter()
        .map(|(name, ty)| {
            let label = super::quote_literal(&format!("{name}="), false);
            let shown = match cast_to.iter().find(|c| &c.column == name) {
                Some(cast) => display_expr(&read_into(name, ty, stored, cast), &cast.type_name, StoredText::AsIs),
                None => display_expr(&quote_ident(name), ty, stored),
            };
            format!("{label} || coalesce({shown}, 'NULL')")
        })
        .collect::<Vec<_>>()
        .join(" || ', ' || ")
}

/// Column `n` of type `t` as the transfer carried it, read into `cast`'s type (UTF-8 already).
fn read_into(n: &str, t: &str, stored: StoredText, cast: &CastTo) -> String {
    let carried = carried_text_expr(n, t, stored);
    let carried = match (t, cast.type_name.as_str()) {
        // A float read back from a text column: text that is no number (changed on the
        // target) reads as NULL, a difference, instead of failing the query.
        ("text" | "varchar" | "bpchar", "float4" | "float8") => format!(
            "CASE WHEN {carried} ~ '^ *[-+]?([0-9]+[.]?[0-9]*([eE][-+]?[0-9]+)?|[.][0-9]+([eE][-+]?[0-9]+)?|Infinity|NaN) *$' \
             THEN {carried} END"
        ),
        _ => carried,
    };
    format!("({carried})::{}", cast.type_text)
}

/// The bytes a row is hashed by: `record_send` of a row of the columns' [`binary_expr`]s, in
/// the given order. `record_send` writes the column count, and per column its type's OID
/// (built-in types' OIDs are the same on every version), its length (or -1 for NULL) and its
/// binary form: one function call per row instead of a text built field by field, no
/// separators or NULL markers needed, and the same bytes from 8.2 to 17 for the same values.
/// Columns named in `text_form` go as the text the transfer carried ([`carried_text_expr`]).
/// Columns in `cast_to` go as the target holds them ([`CastTo`]).
pub fn row_bytes(
    columns: &[(String, String)],
    stored: StoredText,
    float_datetimes: bool,
    text_form: &[String],
    cast_to: &[CastTo],
) -> String {
    if columns.is_empty() {
        return "''::bytea".to_string();
    }
    let fields: Vec<String> = columns
        .iter()
        .map(|(n, t)| {
            if let Some(cast) = cast_to.iter().find(|c| &c.column == n) {
                // The carried text is UTF-8 already: no conversion after the cast.
                let loaded = read_into(n, t, stored, cast);
                binary_expr_sql(&loaded, &cast.type_name, StoredText::AsIs, float_datetimes)
            } else if text_form.contains(n) {
                carried_text_expr(n, t, stored)
            } else {
                binary_expr(n, t, stored, float_datetimes)
            }
        })
        .collect();
    format!("record_send(ROW({}))", fields.join(", "))
}

/// The md5 of a row's [`row_bytes`] as `bit(128)`, parsed once; [`md5_halves`] slices it.
///
/// Written as `bit_in(textout(…), 0, 128)`, not `(…)::bit(128)`: 8.2 has no cast from text
/// to bit (casts through the I/O functions came with 8.3), while calling the input function
/// on the text's cstring works on every version, and costs the same as the cast (which does
/// exactly that) on PostgreSQL 15.
pub fn md5_bits(row_bytes: &str) -> String {
    format!("bit_in(textout('x' || md5({row_bytes})), 0, 128)")
}

/// The md5 (hex text) of a row's [`row_bytes`].
pub fn row_md5(row_bytes: &str) -> String {
    format!("md5({row_bytes})")
}

/// The two 64-bit halves of an md5 held as `bit(128)` (see [`md5_bits`]), as bigints to be
/// summed (order-independent). `sum(bigint)` is numeric, so the sums cannot overflow.
/// `substring` of a bit string and the cast `bit::bigint` exist from 8.2 on.
pub fn md5_halves(bits: &str) -> (String, String) {
    (format!("substring({bits} from 1 for 64)::bigint"), format!("substring({bits} from 65 for 64)::bigint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sent_binary_and_8_2_safe() {
        let cols = [("a".to_string(), "timestamptz".to_string()), ("B".to_string(), "varchar".to_string())];
        let r = row_bytes(&cols, StoredText::AsIs, false, &[], &[]);
        assert_eq!(r, r#"record_send(ROW(timestamptz_send("a"), "B"::text))"#);
        for banned in ["sha256", "hashtext", "string_agg", "WITH (", "concat("] {
            assert!(!r.contains(banned));
        }
        // No text-to-bit cast: 8.2 has none.
        assert!(!md5_bits(&r).contains(")::bit("));
        assert_eq!(row_bytes(&[], StoredText::AsIs, false, &[], &[]), "''::bytea");
    }

    #[test]
    fn float_datetimes_compute_the_integer_form() {
        let t = binary_expr("t", "timestamp", StoredText::AsIs, true);
        assert!(t.contains("int8send") && !t.contains("timestamp_send"), "{t}");
        let tz = binary_expr("t", "timestamptz", StoredText::AsIs, true);
        assert!(tz.contains(r#"("t" AT TIME ZONE 'UTC')"#), "{tz}");
        assert_eq!(binary_expr("t", "time", StoredText::AsIs, false), r#"time_send("t")"#);
        assert!(binary_expr("t", "interval", StoredText::AsIs, true).contains("int4send"));
    }

    #[test]
    fn arrays_hash_without_casts_8_2_lacks() {
        let f = text_expr("a", "_float4", StoredText::AsIs);
        assert!(f.contains("float4send(\"a\"[i])") && f.contains("array_dims"), "{f}");
        assert_eq!(text_expr("a", "_int4", StoredText::AsIs), "textin(array_out(\"a\"))");
    }

    #[test]
    fn numbers_are_binary_and_the_rest_text() {
        assert_eq!(binary_expr("n", "int8", StoredText::AsIs, false), r#""n"::int8"#);
        assert_eq!(binary_expr("n", "int4", StoredText::AsIs, false), r#""n"::int8"#);
        assert_eq!(binary_expr("j", "json", StoredText::AsIs, false), r#""j"::text"#);
        assert_eq!(binary_expr("c", "bpchar", StoredText::AsIs, false), r#""c"::text"#);
    }

    #[test]
    fn gbk_in_sql_ascii_is_converted_before_hashing() {
        let gp4 = StoredText::Convert { from: "GBK", kernel_8_2: true };
        let gp5 = StoredText::Convert { from: "GBK", kernel_8_2: false };
        assert!(binary_expr("v", "text", gp4, true).contains(r#"convert("v"::text, 'GBK', 'UTF8')"#));
        assert!(binary_expr("v", "varchar", gp5, false)
            .contains(r#"convert_from(convert(convert_to("v"::text, 'SQL_ASCII'), 'GBK', 'UTF8'), 'SQL_ASCII')"#));
        // Numbers and dates are ASCII: never converted.
        assert_eq!(binary_expr("n", "int8", gp4, true), binary_expr("n", "int8", StoredText::AsIs, true));
    }

    #[test]
    fn gb18030_above_the_bmp_is_computed_where_the_server_cannot_convert_it() {
        for kernel_8_2 in [true, false] {
            let v = text_expr("v", "text", StoredText::Convert { from: "GB18030", kernel_8_2 });
            // Only values holding a 4-byte code above U+FFFF take the piecewise path.
            assert!(
                v.starts_with(r#"CASE WHEN "v"::text ~ '[\x90-\xe3][\x30-\x39][\x81-\xfe][\x30-\x39]' THEN"#),
                "{v}"
            );
            assert!(v.contains("65536 + "), "{v}");
            for banned in ["convert_from", "convert_to"] {
                assert_eq!(v.contains(banned), !kernel_8_2, "{banned} on 8.2: {v}");
            }
        }
        // GBK has no 4-byte codes: one call.
        let gbk = text_expr("v", "text", StoredText::Convert { from: "GBK", kernel_8_2: true });
        assert_eq!(gbk, r#"convert("v"::text, 'GBK', 'UTF8')"#);
    }

    #[test]
    fn other_server_encodings_hash_their_utf8_form() {
        let euc = StoredText::for_server("EUC_CN", None, false);
        assert_eq!(euc, StoredText::Recode { kernel_8_2: false });
        // The text goes out in the session's client encoding, UTF8: no conversion in SQL.
        assert_eq!(binary_expr("v", "text", euc, false), r#""v"::text"#);
        assert_eq!(StoredText::for_server("UTF8", Some("GB18030"), false), StoredText::AsIs);
        assert_eq!(StoredText::for_server("SQL_ASCII", None, false), StoredText::AsIs);
        assert_eq!(
            StoredText::for_server("SQL_ASCII", Some("GB18030"), true),
            StoredText::Convert { from: "GB18030", kernel_8_2: true }
        );
    }
}
