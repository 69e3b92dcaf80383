//! The `count` and `hash` comparators: per-bucket count (and, for `hash`, the sums of the two
//! 64-bit halves of each row's md5 over its canonical text) computed inside the database.

/// The statements, public so that a test can EXPLAIN them on a real cluster.
pub mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use gptransfer_core::cluster::Session;
use gptransfer_core::compare::{BucketSummary, Comparator, CompareKind, Grouping, RowHash, Scope, Sums};
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

/// Registers `none`: the table is not compared.
pub struct NoneFactory;
/// Registers `sink`: the source's count per window against the sink's own count.
pub struct SinkCountFactory;

/// A comparator that reads no rows itself ([`CompareKind::SinkCount`] or [`CompareKind::Skip`]).
struct Unread(CompareKind);

fn no_options(name: &str, options: &toml::Table) -> Result<(), String> {
    match options.keys().next() {
        Some(k) => Err(format!("compare {name:?} takes no options (got {k:?})")),
        None => Ok(()),
    }
}

impl Factory<dyn Comparator> for NoneFactory {
    fn name(&self) -> &'static str {
        "none"
    }
    fn describe(&self) -> &'static str {
        "no compare: the table is never compared and never alarms"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        no_options("none", options)
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Comparator>, String> {
        no_options("none", options)?;
        Ok(Arc::new(Unread(CompareKind::Skip)))
    }
}

impl Factory<dyn Comparator> for SinkCountFactory {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn describe(&self) -> &'static str {
        "source rows per window against the count the sink reports of its own output"
    }
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
    fn validate(&self, options: &toml::Table) -> Result<(), String> {
        no_options("sink", options)
    }
    fn build(&self, options: &toml::Table) -> Result<Arc<dyn Comparator>, String> {
        no_options("sink", options)?;
        Ok(Arc::new(Unread(CompareKind::SinkCount)))
    }
}

#[async_trait]
impl Comparator for Unread {
    fn kind(&self) -> CompareKind {
        self.0
    }
    fn group_by(&self) -> Option<&str> {
        None
    }
    fn slices(&self) -> u32 {
        1
    }
    async fn summarize(&self, _: &Session, _: &Scope, _: &Grouping) -> Result<Vec<BucketSummary>, RoleError> {
        Err(RoleError::new("this comparator reads no rows"))
    }
    async fn rows(&self, _: &Session, _: &[Scope], _: &[String]) -> Result<Vec<Vec<RowHash>>, RoleError> {
        Err(RoleError::new("this comparator reads no rows"))
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

    async fn rows(&self, session: &Session, scopes: &[Scope], key: &[String]) -> Result<Vec<Vec<RowHash>>, RoleError> {
        let mut out: Vec<Vec<RowHash>> = vec![Vec::new(); scopes.len()];
        if scopes.is_empty() {
            return Ok(out);
        }
        let (statement, params) = sql::rows(scopes, key, self.with_hash);
        setup(session).await?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = session.timed(session.client.query(statement.as_str(), &refs)).await?;
        for r in &rows {
            let which: i32 = r.get(0);
            let slot = usize::try_from(which).ok().and_then(|i| out.get_mut(i)).ok_or_else(|| {
                RoleError::new(format!("unexpected slice number {which} from the server's key listing"))
            })?;
            slot.push(RowHash { key: r.get(1), hash: r.get(2), count: r.get(3) });
        }
        Ok(out)
    }
}
