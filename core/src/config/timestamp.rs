//! Timestamps written in the config: `2020-04-01 00:00:00`, `2020-04-01T00:00:00`, `2020-04-01`.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A wall-clock timestamp (no zone: it is compared with the condition column as written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigTimestamp(pub NaiveDateTime);

const FORMATS: [&str; 4] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"];

impl ConfigTimestamp {
    /// Parses the accepted forms; the message names them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        for f in FORMATS {
            if let Ok(ts) = NaiveDateTime::parse_from_str(t, f) {
                return Ok(ConfigTimestamp(ts));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(ConfigTimestamp(d.and_time(chrono::NaiveTime::MIN)));
        }
        Err(format!("invalid timestamp {text:?}: write \"YYYY-MM-DD HH:MM:SS\" or \"YYYY-MM-DD\""))
    }
}

impl fmt::Display for ConfigTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S"))
    }
}

impl<'de> Deserialize<'de> for ConfigTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigTimestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp \"YYYY-MM-DD HH:MM:SS\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ConfigTimestamp::parse(v).map_err(E::custom)
            }
            // A bare TOML datetime (2020-04-01T00:00:00) arrives as a map with one
            // private key; its string form is what we parse.
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let _key: Option<String> = map.next_key()?;
                let value: String = map.next_value()?;
                ConfigTimestamp::parse(&value).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        for t in ["2020-04-01 00:00:00", "2020-04-01T00:00:00", "2020-04-01", "2020-04-01 00:00"] {
            assert_eq!(ConfigTimestamp::parse(t).map(|c| c.to_string()), Ok("2020-04-01 00:00:00".into()));
        }
        assert!(ConfigTimestamp::parse("2020-13-01").is_err());
    }
}
