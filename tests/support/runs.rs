//! Watching a run from the outside in the tests that kill or signal it mid-window: a guard
//! that never lets the process outlive the test, and polls of `pg_stat_activity`.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::{CmdOutput, Running};

/// How long a poll waits before the test gives up.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Kills the run if the test fails before it ends, so no process outlives the test.
pub struct Guard(pub Option<Running>);

impl Guard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().pid()
    }
    pub fn signal(&self, signal: &str) {
        self.0.as_ref().unwrap().signal(signal);
    }
    pub fn wait(mut self) -> CmdOutput {
        self.0.take().unwrap().wait()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut running) = self.0.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// Polls `sql` (one row, one bigint column) until it returns a row; returns its value.
pub async fn wait_for_row(client: &Client, what: &str, sql: &str) -> i64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let row = client.query_opt(sql, &[]).await.unwrap_or_else(|e| panic!("{what}: {sql}: {e}"));
        if let Some(row) = row {
            return row.get::<_, i64>(0);
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what} after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no gptransfer session is left in this test's database on `client`'s cluster.
pub async fn wait_until_gone(client: &Client) {
    wait_for_row(
        client,
        "the run's sessions to end",
        "SELECT 0::bigint WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name LIKE 'gptransfer %')",
    )
    .await;
}
