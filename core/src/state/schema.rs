//! Creates and migrates the state schema. Runs under an advisory lock so two first runs
//! cannot both create it.

use super::{Bounded, State};
use crate::dialect::sql;
use crate::error::Error;

/// Bumped when the DDL below changes; each step migrates from the one before.
const VERSION: i32 = 6;
const MIGRATION_LOCK: (i32, i32) = (0x6770_7472, 0);

pub(super) async fn exists(state: &State) -> Result<bool, Error> {
    let row = state
        .client()
        .query_opt(sql::TABLE_EXISTS, &[&state.schema, &"schema_version"])
        .bounded(state, "looking for the state schema")
        .await?;
    Ok(row.is_some())
}

pub(super) async fn migrate(state: &State) -> Result<(), Error> {
    let client = state.client();
    // `IS NULL`: pg_advisory_lock returns void, and 8.2 has no binary output for void, which
    // the extended protocol asks for ("no binary output function available for type void").
    client
        .execute("SELECT pg_advisory_lock($1, $2) IS NULL", &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1])
        .bounded(state, "locking for migration")
        .await?;
    let result = migrate_locked(state).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1, $2)", &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1])
        .bounded(state, "releasing the migration lock")
        .await;
    result
}

async fn migrate_locked(state: &State) -> Result<(), Error> {
    let client = state.client();
    let flavour = state.session.flavour;
    let schema_exists = client
        .query_opt("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", &[&state.schema])
        .bounded(state, "looking for the state schema")
        .await?
        .is_some();
    if !schema_exists {
        client
            .batch_execute(&sql::create_schema(flavour, &state.schema))
            .bounded(state, "creating the state schema")
            .await?;
    }
    let current: i32 = if exists(state).await? {
        client
            .query_one(&format!("SELECT max(version) FROM {}", state.table("schema_version")), &[])
            .bounded(state, "reading the state version")
            .await?
            .get::<_, Option<i32>>(0)
            .unwrap_or(0)
    } else {
        0
    };
    if current > VERSION {
        return Err(Error::State {
            cluster: state.cluster.name.clone(),
            message: format!(
                "schema {} is at version {current}, newer than this gptransfer ({VERSION}); upgrade gptransfer",
                state.schema
            ),
        });
    }
    if current < 1 {
        let ddl = format!(
            "BEGIN;
CREATE TABLE {history} (
    id bigserial PRIMARY KEY,
    job text NOT NULL,
    table_name text NOT NULL,
    target_table text NOT NULL,
    window_id text NOT NULL,
    window_start timestamp NOT NULL,
    window_end timestamp NOT NULL,
    mode text NOT NULL,
    chain text NOT NULL,
    rows_read bigint,
    rows_written bigint,
    bytes bigint,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    elapsed_seconds numeric(14,2),
    status text NOT NULL,
    error text,
    attempt integer NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL
);
CREATE INDEX {history_idx} ON {history} (job, table_name, window_id);
CREATE TABLE {cursors} (
    job text NOT NULL,
    table_name text NOT NULL,
    cursor_end timestamp NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (job, table_name)
);
CREATE TABLE {version} (version integer NOT NULL, applied_at timestamptz NOT NULL);
INSERT INTO {version} VALUES (1, now());
COMMIT;",
            history = state.table("history"),
            history_idx = crate::dialect::quote_ident("history_job_table_window"),
            cursors = state.table("cursors"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "creating the state tables").await?;
    }
    if current < 2 {
        // Version 2: alarms (compare). `diff` is 1 while an alarm is active and 0 once reset,
        // as the seed's alarm SQL expects.
        let ddl = format!(
            "BEGIN;
CREATE TABLE {alarms} (
    id bigserial PRIMARY KEY,
    data_name text NOT NULL,
    job text NOT NULL,
    table_name text NOT NULL,
    window_id text NOT NULL,
    bucket text NOT NULL,
    source_count bigint NOT NULL,
    target_count bigint NOT NULL,
    kind text NOT NULL,
    key text,
    diff integer NOT NULL,
    detected_at timestamptz NOT NULL,
    reset_at timestamptz
);
CREATE INDEX {alarms_idx} ON {alarms} (detected_at);
INSERT INTO {version} VALUES (2, now());
COMMIT;",
            alarms = state.table("alarms"),
            alarms_idx = crate::dialect::quote_ident("alarms_detected_at"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "creating the alarm table").await?;
    }
    if current < 3 {
        // Version 3: what a loader reports beyond the row count (gpload's summary lines).
        // One ADD COLUMN per column: 8.2 takes no IF NOT EXISTS, and the version gates it.
        let ddl = format!(
            "BEGIN;
ALTER TABLE {history} ADD COLUMN rows_inserted bigint;
ALTER TABLE {history} ADD COLUMN rows_updated bigint;
ALTER TABLE {history} ADD COLUMN format_errors bigint;
INSERT INTO {version} VALUES (3, now());
COMMIT;",
            history = state.table("history"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "adding the loader counts to history").await?;
    }
    if current < 4 {
        // Version 4: rows of a merge batch folded into a later row with the same key (the
        // last row of the batch wins), so rows read = rows written + duplicates folded.
        let ddl = format!(
            "BEGIN;
ALTER TABLE {history} ADD COLUMN duplicates_folded bigint;
INSERT INTO {version} VALUES (4, now());
COMMIT;",
            history = state.table("history"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "adding the folded duplicates to history").await?;
    }
    if current < 5 {
        // Version 5: why an attempt ran when not by a plain run (`repair`, `reload`), and the
        // rows `cursor set` writes (`status = 'cursor set'`, the old cursor in `reason`).
        let ddl = format!(
            "BEGIN;
ALTER TABLE {history} ADD COLUMN reason text;
INSERT INTO {version} VALUES (5, now());
COMMIT;",
            history = state.table("history"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "adding the reason of an attempt to history").await?;
    }
    if current < 6 {
        // Version 6: who holds each job's lock, written as it is taken, so a second run can
        // name the holder on servers without application_name (8.x) before it writes history.
        let ddl = format!(
            "BEGIN;
CREATE TABLE {runs} (
    job text NOT NULL,
    server_pid integer NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL
);
INSERT INTO {version} VALUES (6, now());
COMMIT;",
            runs = state.table("runs"),
            version = state.table("schema_version"),
        );
        migrate_step(state, &ddl, "adding the lock holders' table").await?;
    }
    Ok(())
}

/// Runs one migration's DDL (its own BEGIN … COMMIT) under the state session's read timeout:
/// a stalled network must fail the command, not hang it. On failure the transaction is rolled
/// back (a timed-out session is closed, which rolls it back on the server).
async fn migrate_step(state: &State, ddl: &str, what: &str) -> Result<(), Error> {
    let client = state.client();
    if let Err(e) = client.batch_execute(ddl).bounded(state, what).await {
        let _ = client.batch_execute("ROLLBACK").bounded(state, "rolling back the migration").await;
        return Err(e);
    }
    Ok(())
}
