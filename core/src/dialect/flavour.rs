//! Flavour detection from `version()`.

use std::fmt;

use crate::config::FlavourName;

/// The kind of server, which decides the SQL we may send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// Greenplum 4.x, PostgreSQL 8.2 kernel.
    Gp4,
    /// Greenplum 5.x, 8.3 kernel.
    Gp5,
    /// Greenplum 6.x, 9.4 kernel: no `ON CONFLICT`.
    Gp6,
    /// Greenplum 7.x, 12 kernel.
    Gp7,
    /// PostgreSQL, by major version (8, 9 → 80/90-style numbers: 82, 94, then 10, 11, …).
    Postgres {
        /// `8.2` → 82, `9.4` → 94, `12.5` → 12.
        major: u32,
    },
}

impl Flavour {
    /// Reads `SELECT version()`. Unknown text is taken as a modern PostgreSQL.
    pub fn detect(version: &str) -> Flavour {
        if let Some(pos) = version.find("Greenplum Database ") {
            let gp = &version[pos + "Greenplum Database ".len()..];
            return match gp.split('.').next().and_then(|m| m.trim().parse::<u32>().ok()) {
                Some(0..=4) => Flavour::Gp4,
                Some(5) => Flavour::Gp5,
                Some(6) => Flavour::Gp6,
                _ => Flavour::Gp7,
            };
        }
        let number = version.strip_prefix("PostgreSQL ").and_then(|rest| rest.split_whitespace().next()).unwrap_or("");
        let mut parts = number.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(16);
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if major < 10 {
            Flavour::Postgres { major: major * 10 + minor }
        } else {
            Flavour::Postgres { major }
        }
    }

    /// The flavour a config override names. `postgres` means a current PostgreSQL.
    pub fn from_name(name: FlavourName) -> Flavour {
        match name {
            FlavourName::Gp4 => Flavour::Gp4,
            FlavourName::Gp5 => Flavour::Gp5,
            FlavourName::Gp6 => Flavour::Gp6,
            FlavourName::Gp7 => Flavour::Gp7,
            FlavourName::Postgres => Flavour::Postgres { major: 16 },
        }
    }

    /// The PostgreSQL kernel, as `major * 10 + minor` for 8.x/9.x and `major * 10` after.
    pub fn kernel(self) -> u32 {
        match self {
            Flavour::Gp4 => 82,
            Flavour::Gp5 => 83,
            Flavour::Gp6 => 94,
            Flavour::Gp7 => 120,
            Flavour::Postgres { major } if (10..80).contains(&major) => major * 10,
            Flavour::Postgres { major } => major,
        }
    }

    /// Greenplum of any version.
    pub fn is_greenplum(self) -> bool {
        !matches!(self, Flavour::Postgres { .. })
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flavour::Gp4 => f.write_str("gp4"),
            Flavour::Gp5 => f.write_str("gp5"),
            Flavour::Gp6 => f.write_str("gp6"),
            Flavour::Gp7 => f.write_str("gp7"),
            Flavour::Postgres { major } if *major >= 80 => {
                write!(f, "postgres {}.{}", major / 10, major % 10)
            }
            Flavour::Postgres { major } => write!(f, "postgres {major}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_every_flavour() {
        let cases = [
            ("PostgreSQL 8.2.15 (Greenplum Database 4.3.33.0 build 1) on x86_64", Flavour::Gp4),
            ("PostgreSQL 8.3.23 (Greenplum Database 5.28.4 build commit:abc)", Flavour::Gp5),
            ("PostgreSQL 9.4.26 (Greenplum Database 6.24.3 build commit:25d3498a)", Flavour::Gp6),
            ("PostgreSQL 12.12 (Greenplum Database 7.0.0 build commit:bf073b8)", Flavour::Gp7),
            ("PostgreSQL 15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu", Flavour::Postgres { major: 15 }),
            ("PostgreSQL 9.4.26 on x86_64-pc-linux-gnu", Flavour::Postgres { major: 94 }),
            ("PostgreSQL 8.2.23 on i686-pc-linux-gnu", Flavour::Postgres { major: 82 }),
        ];
        for (text, want) in cases {
            assert_eq!(Flavour::detect(text), want, "{text}");
        }
        assert_eq!(Flavour::Postgres { major: 15 }.kernel(), 150);
        assert_eq!(Flavour::Postgres { major: 94 }.kernel(), 94);
        assert_eq!(Flavour::Gp6.to_string(), "gp6");
        assert_eq!(Flavour::Postgres { major: 94 }.to_string(), "postgres 9.4");
    }
}
