//! What the connected role may do, read from the catalog, against what the gpfdist transport
//! needs on its side — without superuser: Greenplum's role attribute for gpfdist external tables
//! of that type (`pg_roles.rolcreatewextgpfd` / `rolcreaterextgpfd`, the same on GP4.3, GP6 and
//! GP7; not inherited through role membership, like every role attribute) and `TEMP` on the
//! database, since the transport's external tables are temporary. GP7 also needs its
//! `gp_exttable_fdw` extension in the database (external tables are a foreign-data wrapper
//! there).

use tokio_postgres::Client;

use super::{quote_ident, Side};

/// What the role connected through `client` lacks to run the gpfdist transport's `side` on
/// cluster `cluster` (its name in the configuration, for the message), or `None` when it has
/// everything. The message names the role, the cluster, each missing privilege and the exact
/// statement an administrator runs to grant it. `Err` when the catalog cannot be read (e.g.
/// the cluster is not Greenplum).
pub async fn missing_privileges(client: &Client, cluster: &str, side: Side) -> Result<Option<String>, String> {
    let attribute = match side {
        Side::Source => "rolcreatewextgpfd",
        Side::Target => "rolcreaterextgpfd",
    };
    // `pg_roles`, not `pg_authid`: a non-superuser may read the view only.
    let sql = format!(
        "SELECT r.rolname::text, r.rolsuper, r.{attribute}, current_database()::text, \
                has_database_privilege(current_database(), 'TEMP'), \
                current_setting('server_version_num')::int \
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
    );
    let row = client.query_one(&sql, &[]).await.map_err(|e| {
        format!(
            "cluster {cluster}: cannot read the role's privileges for the gpfdist transport ({}); \
             the gpfdist transport needs a Greenplum cluster (4.3, 5, 6 or 7)",
            db_error_text(&e)
        )
    })?;
    let role: String = row.get(0);
    let superuser: bool = row.get(1);
    let may_create: Option<bool> = row.get(2);
    let database: String = row.get(3);
    let temp: bool = row.get(4);
    let version: i32 = row.get(5);
    if superuser {
        return Ok(None);
    }
    let quoted_role = quote_ident(&role);
    let mut missing = Vec::new();
    if !may_create.unwrap_or(false) {
        let kind = side.table_type();
        missing.push(format!(
            "the privilege to create {kind} gpfdist external tables; a superuser grants it with:\n    \
             ALTER ROLE {quoted_role} CREATEEXTTABLE (type='{kind}', protocol='gpfdist');"
        ));
    }
    if !temp {
        missing.push(format!(
            "TEMP on database {} (the external tables are temporary); its owner or a superuser grants it with:\n    \
             GRANT TEMPORARY ON DATABASE {} TO {quoted_role};",
            quote_ident(&database),
            quote_ident(&database)
        ));
    }
    if version >= 120000 && !has_exttable_fdw(client).await.map_err(|e| format!("cluster {cluster}: {e}"))? {
        missing.push(format!(
            "the extension gp_exttable_fdw in database {} (Greenplum 7 external tables); a superuser creates it with:\n    \
             CREATE EXTENSION IF NOT EXISTS gp_exttable_fdw;",
            quote_ident(&database)
        ));
    }
    if missing.is_empty() {
        return Ok(None);
    }
    let purpose = match side {
        Side::Source => "its segments write the rows to gpfdist through writable external tables",
        Side::Target => "its segments read the rows from gpfdist through readable external tables",
    };
    let mut message = format!(
        "cluster {cluster}: role {quoted_role} lacks what the gpfdist transport needs as the {} ({purpose}):",
        side.label()
    );
    for item in missing {
        message.push_str("\n  - ");
        message.push_str(&item);
    }
    Ok(Some(message))
}

/// GP7's external tables are the foreign-data wrapper of this extension.
async fn has_exttable_fdw(client: &Client) -> Result<bool, String> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwname = 'gp_exttable_fdw')",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read pg_foreign_data_wrapper: {}", db_error_text(&e)))?;
    Ok(row.get(0))
}

/// The server's own message when there is one (tokio-postgres' Display says only "db error").
pub(super) fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}
