//! The segments of a Greenplum source write a window through a writable external table
//! (the segment-to-segment path), for the sources that support it.

use super::Session;
use crate::dialect::external;
use crate::roles::{ExternalLocation, WindowCtx};
use crate::RoleError;

/// Has the segments behind `session` write the window's rows (`select` list, `predicate`) to
/// `location` through a writable external table; the rows written. The one statement that
/// moves the window is bounded by the location's timeout, not the session's read timeout.
pub async fn export_window(
    session: &Session,
    ctx: &WindowCtx,
    location: &ExternalLocation,
    select: &str,
    predicate: Option<String>,
) -> Result<u64, RoleError> {
    let source_err = |what: &'static str| {
        let cluster = ctx.source.name.clone();
        move |e: RoleError| RoleError { message: format!("{what} on source cluster {cluster:?}: {}", e.message), ..e }
    };
    let name = external::table_name("gptransfer_out");
    let described: Vec<(String, String, String)> =
        ctx.described.iter().map(|c| (c.name.clone(), c.type_name.clone(), c.type_text.clone())).collect();
    let columns = external::export_columns(session.flavour, &described);
    let create = external::create_writable(session.flavour, &name, &columns, &location.url, &location.encoding);
    tracing::debug!(cluster = %ctx.source.name, "{create}");
    let create = format!("{}; {create}", external::writer_settings());
    session
        .timed(session.client.batch_execute(&create))
        .await
        .map_err(source_err("creating the writable external table"))?;
    let insert = external::export_rows(&name, &ctx.table.source_table, select, predicate.as_deref());
    tracing::debug!(cluster = %ctx.source.name, "{insert}");
    let what = format!("writing the window to gpfdist on source cluster {:?}", ctx.source.name);
    let exported = external_statement(session, &insert, location, &what).await?;
    let drop = external::drop_table(&name);
    session
        .timed(session.client.batch_execute(&drop))
        .await
        .map_err(source_err("dropping the writable external table"))?;
    Ok(exported)
}

/// How long a statement stopped by [`crate::roles::StopSignal`] may take to end once cancelled.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the statement that moves a window through an external table (`what` it does, for
/// errors): bounded by the location's timeout, and cancelled on the server when the location's
/// stop signal fires (the session closed should the cancel not end it). The rows it moved.
pub async fn external_statement(
    session: &Session,
    sql: &str,
    location: &ExternalLocation,
    what: &str,
) -> Result<u64, RoleError> {
    let statement = tokio::time::timeout(location.timeout, session.client.execute(sql, &[]));
    tokio::pin!(statement);
    tokio::select! {
        done = &mut statement => match done {
            Ok(r) => r.map_err(|e| RoleError::from_pg(what, &e)),
            Err(_) => {
                session.close();
                Err(RoleError::new(format!(
                    "{what} took longer than the transport's timeout ({}s); raise `timeout` or make the windows smaller",
                    location.timeout.as_secs()
                )))
            }
        },
        () = location.stop.stopped() => {
            let cancelled = session.client.cancel_token().cancel_query(tokio_postgres::NoTls).await.is_ok();
            if !cancelled || tokio::time::timeout(STOP_GRACE, &mut statement).await.is_err() {
                session.close();
            }
            Err(RoleError::new(format!("{what}: stopped, the window's other side having ended")))
        }
    }
}
