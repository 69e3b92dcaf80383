//! The `count` and `hash` comparators: per-bucket count (and, for `hash`, the sums of the two
//! 64-bit halves of each row's md5 over its canonical text) computed inside the database.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::cluster::Session;
use gptransfer_core::compare::{BucketSummary, Comparator, Grouping, RowHash, Scope, Sums};
use gptransfer_core::dialect::canonical;
use gptransfer_core::registry::{parse_options, Factory};
use gptransfer_core::RoleError;

/// Options of both comparators.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Column whose values are the first drill-down level (e.g. `site`).
    pub group_by: Option<String>,
    /// Time slices a differing bucket is cut into before listing keys.
    #[serde(default = "default_slices")]
    pub slices: u32,
}

fn default_slices() -> u32 {
    256
}

/// A comparator: `hash` when `with_hash`, else `count`.
#[derive(Debug, Clone)]
pub struct SqlComparator {
    config: CompareConfig,
    with_hash: bool,
}

/// Registers `hash`.
pub struct HashFactory;
/// Registers `count`.
pub struct CountFactory;

fn validate(options: &toml::Table) -> Result<CompareConfig, String> {
    let c: CompareConfig = parse_options(options)?;
    if c.slices == 0 || c.slices > 10_000 {
        return Err("slices must be between 1 and 10000".into());
    }
    Ok(c)
}

impl Factory<dyn Comparator> for HashFactory {
    fn name(&self) -> &'static str {
        "hash"
    }
    fn describe(&self) -> &'static str {
        "count + order-independent md5 row hash per bucket, drilled down to keys"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        validate(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Comparator>, String> {
        Ok(Arc::new(SqlComparator { config: validate(options)?, with_hash: true }))
    }
}

impl Factory<dyn Comparator> for CountFactory {
    fn name(&self) -> &'static str {
        "count"
    }
    fn describe(&self) -> &'static str {
        "row counts per bucket (finds missing and extra rows, not changed values)"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        validate(options).map(|_| ())
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Comparator>, String> {
        Ok(Arc::new(SqlComparator { config: validate(options)?, with_hash: false }))
    }
}

/// The session settings the canonical row text relies on (every connection sets them
/// already; set again so the comparator does not depend on it).
async fn setup(session: &Session) -> Result<(), RoleError> {
    session.timed(session.client.batch_execute(canonical::SESSION_SETUP)).await
}

#[async_trait]
impl Comparator for SqlComparator {
    fn group_by(&self) -> Option<&str> {
        self.config.group_by.as_deref()
    }

    fn slices(&self) -> u32 {
        self.config.slices
    }

    async fn summarize(
        &self,
        session: &Session,
        scope: &Scope,
        grouping: &Grouping,
    ) -> Result<Vec<BucketSummary>, RoleError> {
        let (statement, params) = sql::summary(scope, grouping, self.with_hash);
        setup(session).await?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = session.timed(session.client.query(statement.as_str(), &refs)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let big = |i: usize| -> Result<i128, RoleError> {
                let text: String = r.get(i);
                text.parse::<i128>()
                    .map_err(|_| RoleError::new(format!("unexpected hash sum {text:?} from the server")))
            };
            out.push(BucketSummary {
                group: r.get(0),
                slice: r.get(1),
                sums: Sums { count: r.get(2), h1: big(3)?, h2: big(4)? },
            });
        }
        Ok(out)
    }

    async fn rows(&self, session: &Session, scope: &Scope, key: &[String]) -> Result<Vec<RowHash>, RoleError> {
        let (statement, params) = sql::rows(scope, key, self.with_hash);
        setup(session).await?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = session.timed(session.client.query(statement.as_str(), &refs)).await?;
        Ok(rows.iter().map(|r| RowHash { key: r.get(0), hash: r.get(1), count: r.get(2) }).collect())
    }
}
