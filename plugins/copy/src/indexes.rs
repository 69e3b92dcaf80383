//! A `full` load without the target's indexes: after the TRUNCATE they are dropped, after the
//! COPY built again, each with one sort instead of one insertion per row, all in the window's
//! transaction — so any failure (a COPY error, a duplicate key the unique index refuses, a
//! signal) rolls back to the old table with every index it had.

use gptransfer_core::cluster::Session;
use gptransfer_core::dialect::indexes::{self, IndexConstraint, TableIndex};
use gptransfer_core::roles::WindowCtx;
use gptransfer_core::RoleError;

/// The indexes dropped for a load, to build again before it commits.
pub(crate) struct Dropped(Vec<TableIndex>);

fn read_err(ctx: &WindowCtx) -> impl Fn(RoleError) -> RoleError + '_ {
    move |e| RoleError {
        message: format!(
            "reading the indexes of {} on target cluster {:?}: {}",
            ctx.table.target_table, ctx.target.name, e.message
        ),
        ..e
    }
}

/// Drops the target's indexes that may be rebuilt (see [`indexes::table_indexes`]); the table
/// must already be locked by this transaction (the TRUNCATE does it), so that the definitions
/// read are the ones dropped.
pub(crate) async fn drop_for_load(session: &Session, ctx: &WindowCtx) -> Result<Dropped, RoleError> {
    let target = &ctx.table.target_table;
    let rows = session
        .timed(session.client.query(indexes::table_indexes(session.flavour).as_str(), &[&target.schema, &target.name]))
        .await
        .map_err(read_err(ctx))?;
    let mut dropped = Vec::new();
    for row in rows {
        let index = parse(&row).map_err(|e| read_err(ctx)(RoleError::new(e.to_string())))?;
        match index.kept_on(session.flavour) {
            Some(why) => {
                tracing::debug!(cluster = %ctx.target.name, "{target}: keeping {} during the load: {why}", index.describe())
            }
            None => dropped.push(index),
        }
    }
    if dropped.is_empty() {
        return Ok(Dropped(dropped));
    }
    let statements: Vec<String> = dropped.iter().map(|i| i.drop_statement(target)).collect();
    for s in &statements {
        tracing::debug!(cluster = %ctx.target.name, "{s}");
    }
    session.timed(session.client.batch_execute(&statements.join(";\n"))).await.map_err(|e| RoleError {
        message: format!(
            "dropping the indexes of {target} for the load on target cluster {:?}: {}; nothing was changed. Set \
             `rebuild_indexes = false` on the copy sink to load with the indexes in place",
            ctx.target.name, e.message
        ),
        ..e
    })?;
    Ok(Dropped(dropped))
}

fn parse(row: &tokio_postgres::Row) -> Result<TableIndex, tokio_postgres::Error> {
    let constraint = match (row.try_get::<_, Option<String>>(2)?, row.try_get::<_, Option<String>>(3)?) {
        (Some(name), Some(definition)) => Some(IndexConstraint {
            name,
            definition,
            kind: row.try_get::<_, Option<String>>(10)?.unwrap_or_default(),
            deferrable: row.try_get(11)?,
            deferred: row.try_get(12)?,
        }),
        _ => None,
    };
    Ok(TableIndex {
        name: row.try_get(0)?,
        definition: row.try_get(1)?,
        constraint,
        tablespace: row.try_get(4)?,
        clustered: row.try_get(5)?,
        replica_identity: row.try_get(6)?,
        comment: row.try_get(7)?,
        constraint_comment: row.try_get(8)?,
        kept_because: row.try_get(9)?,
        has_options: row.try_get(13)?,
    })
}

impl Dropped {
    /// Builds every dropped index again, one round trip each; the first that fails fails the
    /// window, named, with what to do.
    pub(crate) async fn rebuild(
        &self,
        session: &Session,
        ctx: &WindowCtx,
        maintenance_work_mem: Option<&str>,
    ) -> Result<(), RoleError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let target = &ctx.table.target_table;
        if let Some(mem) = maintenance_work_mem {
            let set = indexes::maintenance_work_mem(mem);
            session.timed(session.client.batch_execute(&set)).await.map_err(|e| RoleError {
                message: format!(
                    "{set} on target cluster {:?}: {}; fix the copy sink's `maintenance_work_mem`",
                    ctx.target.name, e.message
                ),
                ..e
            })?;
        }
        for index in &self.0 {
            let statements = index.rebuild_statements(target, session.flavour);
            for s in &statements {
                tracing::debug!(cluster = %ctx.target.name, "{s}");
            }
            let result = session.timed(session.client.batch_execute(&statements.join(";\n"))).await;
            result.map_err(|e| rebuild_failed(ctx, index, e))?;
        }
        tracing::debug!(cluster = %ctx.target.name, "{target}: {} index(es) rebuilt after the load", self.0.len());
        Ok(())
    }
}

fn rebuild_failed(ctx: &WindowCtx, index: &TableIndex, e: RoleError) -> RoleError {
    let target = &ctx.table.target_table;
    // 23505 unique_violation: the source's rows hold a key twice.
    let cause = if e.message.contains("SQLSTATE 23505") {
        "The source holds a key twice that this unique index refuses (the detail names it): remove the duplicates \
         at the source, or drop or change the index on the target. "
    } else {
        ""
    };
    RoleError {
        message: format!(
            "rebuilding {} of {target} after the load on target cluster {:?}: {}. Nothing of the window was kept: \
             {target} still has its old rows and every index. {cause}With `rebuild_indexes = false` on the copy sink \
             the indexes stay in place during the load (and COPY names the first row they refuse)",
            index.describe(),
            ctx.target.name,
            e.message.trim_end_matches('.')
        ),
        ..e
    }
}
