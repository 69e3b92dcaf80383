//! Durations as the seed writes them: `500us`, `250ms`, `90s`, `15m`, `1h`, `2d`, `1w`, `1h30m`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration read from the config; accepts every unit the seed names, combined freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// Parses `1h30m`, `500us`, `2 days`, … Zero and negative values are rejected by callers
    /// that need a positive span (window durations); `lag = "0s"` is fine.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty duration: write e.g. \"1h\", \"30m\", \"1h30m\"".into());
        }
        // The seed names Python's timedelta units; humantime lacks the long forms of two.
        let normalized = trimmed
            .replace("microseconds", "us")
            .replace("microsecond", "us")
            .replace("milliseconds", "ms")
            .replace("millisecond", "ms");
        if let Some(unit) = refused_unit(&normalized) {
            return Err(format!("invalid duration {text:?}: {unit}"));
        }
        humantime::parse_duration(&normalized).map(ConfigDuration).map_err(|_| {
            format!("invalid duration {text:?}: use a number and a unit among us, ms, s, m, h, d, w, e.g. \"1h30m\"")
        })
    }

    /// Why this span cannot be a window's length, if it cannot: window ids, history, files and
    /// compare name a window by its bounds to the second, so shorter or fractional windows
    /// would collide.
    pub fn window_problem(&self) -> Option<String> {
        if self.0.is_zero() {
            Some("duration must be greater than zero".into())
        } else if self.0.subsec_nanos() != 0 {
            Some(format!(
                "duration {self} is not a whole number of seconds: windows are named to the second \
                 (history, files, compare), so write e.g. \"1s\", \"90s\" or \"15m\""
            ))
        } else {
            None
        }
    }

    /// The span as chrono's type, for window arithmetic.
    pub fn as_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

/// Units humantime accepts that a window length must not use: months and years have no fixed
/// length (humantime counts a month as 30.44 days, so "15M" would silently be 15 months, not
/// 15 minutes), and nanoseconds are finer than any timestamp column.
fn refused_unit(text: &str) -> Option<&'static str> {
    let units = text.split(|c: char| !c.is_ascii_alphabetic()).filter(|u| !u.is_empty());
    for unit in units {
        match unit {
            "M" => return Some("\"M\" would mean months: write \"m\" for minutes, or the span in days (\"30d\")"),
            "month" | "months" | "mon" | "y" | "year" | "years" => {
                return Some(
                    "months and years have no fixed length: write the span in days or weeks (\"30d\", \"52w\")",
                )
            }
            "ns" | "nsec" | "nanos" | "nanosecond" | "nanoseconds" => {
                return Some("timestamps have microsecond resolution: use us, ms, s, m, h, d or w")
            }
            _ => {}
        }
    }
    None
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"1h\", \"30m\", \"1h30m\", \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl serde::Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_of_the_seed() {
        let cases = [
            ("500us", Duration::from_micros(500)),
            ("250ms", Duration::from_millis(250)),
            ("90s", Duration::from_secs(90)),
            ("15m", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(2 * 86400)),
            ("1w", Duration::from_secs(7 * 86400)),
            ("1h30m", Duration::from_secs(5400)),
            ("2 days", Duration::from_secs(2 * 86400)),
            ("3weeks", Duration::from_secs(21 * 86400)),
            ("10minutes", Duration::from_secs(600)),
            ("7microseconds", Duration::from_micros(7)),
            ("7milliseconds", Duration::from_millis(7)),
        ];
        for (text, want) in cases {
            assert_eq!(ConfigDuration::parse(text), Ok(ConfigDuration(want)), "{text}");
        }
    }

    #[test]
    fn months_years_and_nanoseconds_are_refused() {
        for (bad, says) in [
            ("15M", "would mean months"),
            ("1month", "no fixed length"),
            ("2 months", "no fixed length"),
            ("1y", "no fixed length"),
            ("1h 2M", "would mean months"),
            ("10ns", "microsecond"),
        ] {
            let err = ConfigDuration::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(ConfigDuration::parse("15m"), Ok(ConfigDuration(Duration::from_secs(900))));
    }

    #[test]
    fn windows_are_whole_seconds() {
        assert_eq!(ConfigDuration::parse("1s").unwrap().window_problem(), None);
        assert_eq!(ConfigDuration::parse("1h30m").unwrap().window_problem(), None);
        for bad in ["250ms", "1s500ms", "500us"] {
            let problem = ConfigDuration::parse(bad).unwrap().window_problem().unwrap();
            assert!(problem.contains("whole number of seconds"), "{bad}: {problem}");
        }
        assert!(ConfigDuration(Duration::ZERO).window_problem().unwrap().contains("greater than zero"));
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for bad in ["", "1x", "h", "-1h", "1.5.h"] {
            let err = ConfigDuration::parse(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad}: {err}");
        }
    }
}
