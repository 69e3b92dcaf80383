//! A source's `COPY … TO STDOUT` as a byte stream that owns its session, fails a stalled read
//! after `read_timeout`, and ends after its first error.

use futures_util::{FutureExt, StreamExt};
use tokio_postgres::CopyOutStream;

use super::Session;
use crate::error::RoleError;
use crate::roles::ByteStream;

/// What gets a source's session back after its COPY was read to the end.
pub type SessionDone = Box<dyn FnOnce(Session) + Send>;

impl Session {
    /// Starts `statement` (a `COPY … TO STDOUT`) on source cluster `cluster` and streams its
    /// bytes. The session moves into the stream: the connection lives exactly as long as the read.
    pub async fn copy_out_stream(self, statement: &str, cluster: &str) -> Result<ByteStream, RoleError> {
        let stream = self.start_copy_out(statement, cluster).await?;
        Ok(self.stream_copy_out(stream, cluster, Box::new(drop)))
    }

    /// Sends `statement` (a `COPY … TO STDOUT`) and waits for the server to start it; the
    /// rows follow through [`Session::stream_copy_out`].
    pub async fn start_copy_out(&self, statement: &str, cluster: &str) -> Result<CopyOutStream, RoleError> {
        self.timed(self.client.copy_out(statement))
            .await
            .map_err(|e| RoleError { message: format!("reading from source cluster {cluster:?}: {}", e.message), ..e })
    }

    /// The rows of a started COPY as a byte stream owning the session. `done` gets the session
    /// back once every row was read (the session is idle again); after an error, or when the
    /// stream is dropped before its end, the session is dropped, which closes it.
    pub fn stream_copy_out(self, stream: CopyOutStream, cluster: &str, done: SessionDone) -> ByteStream {
        let timeout = self.read_timeout;
        let rows = futures_util::stream::unfold(
            (Box::pin(stream), self, cluster.to_string(), Some(done)),
            move |(mut stream, session, cluster, mut done)| async move {
                // Most rows are already buffered: only arm a timer when we would wait.
                let next = match stream.next().now_or_never() {
                    Some(item) => Ok(item),
                    None => tokio::time::timeout(timeout, stream.next()).await,
                };
                match next {
                    Ok(Some(Ok(bytes))) => Some((Ok(bytes), (stream, session, cluster, done))),
                    Ok(Some(Err(e))) => Some((
                        Err(RoleError::from_pg(&format!("reading from source cluster {cluster:?}"), &e)),
                        (stream, session, cluster, None),
                    )),
                    Ok(None) => {
                        if let Some(done) = done.take() {
                            done(session);
                        }
                        None
                    }
                    Err(_) => Some((
                        Err(RoleError::retriable(format!(
                            "source cluster {cluster:?} sent nothing for {timeout:?} (read_timeout): stalled stream"
                        ))),
                        (stream, session, cluster, None),
                    )),
                }
            },
        );
        end_after_error(Box::pin(rows))
    }

    /// The value of a server setting (`SHOW`, which exists on every version).
    pub async fn show(&self, setting: &str) -> Result<String, RoleError> {
        let messages = self.timed(self.client.simple_query(&format!("SHOW {setting}"))).await?;
        Ok(messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default())
    }
}

/// Ends `rows` after its first error, so a consumer never polls a dead connection again.
pub fn end_after_error(rows: ByteStream) -> ByteStream {
    let mut failed = false;
    Box::pin(rows.take_while(move |item| {
        let go = !failed;
        failed = item.is_err();
        std::future::ready(go)
    }))
}
