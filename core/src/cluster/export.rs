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
    let exported = match tokio::time::timeout(location.timeout, session.client.execute(insert.as_str(), &[])).await {
        Ok(r) => r.map_err(|e| {
            RoleError::from_pg(&format!("writing the window to gpfdist on source cluster {:?}", ctx.source.name), &e)
        })?,
        Err(_) => {
            session.close();
            return Err(RoleError::new(format!(
                "writing the window to gpfdist on source cluster {:?} took longer than the transport's timeout ({}s); \
                 raise `timeout` or make the windows smaller",
                ctx.source.name,
                location.timeout.as_secs()
            )));
        }
    };
    let drop = external::drop_table(&name);
    session
        .timed(session.client.batch_execute(&drop))
        .await
        .map_err(source_err("dropping the writable external table"))?;
    Ok(exported)
}
