//! One advisory lock per job on the state cluster, held by the state session for the whole
//! run: released by the server when the process dies, so a crash never leaves it stale.

use super::{Bounded, State};
use crate::dialect::sql;
use crate::error::Error;

/// Lock namespace ("gptr"), so our locks do not collide with the application's.
const NAMESPACE: i32 = 0x6770_7472;

/// A held job lock; released when the state session ends or by `release`.
#[derive(Debug)]
pub struct JobLock {
    /// The job.
    pub job: String,
    key: i32,
}

/// FNV-1a of the job name: stable across versions and platforms (unlike `hashtext`).
fn job_key(job: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in job.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

impl State {
    /// Takes the job's lock or says who holds it.
    pub async fn lock_job(&self, job: &str) -> Result<JobLock, Error> {
        let key = job_key(job);
        let row = self
            .client()
            .query_one("SELECT pg_try_advisory_lock($1, $2), pg_backend_pid()", &[&NAMESPACE, &key])
            .bounded(self, "taking the job lock")
            .await?;
        if row.get::<_, bool>(0) {
            self.record_holder(job, row.get(1)).await?;
            self.close_abandoned(job).await?;
            return Ok(JobLock { job: job.to_string(), key });
        }
        // pg_locks shows oids, i.e. the keys as unsigned 32-bit numbers.
        let as_oid = |k: i32| i64::from(u32::from_ne_bytes(k.to_ne_bytes()));
        let holder = match self
            .client()
            .query_opt(sql::advisory_lock_holder(self.session.flavour), &[&as_oid(NAMESPACE), &as_oid(key)])
            .bounded(self, "naming the lock holder")
            .await
        {
            Ok(Some(r)) => {
                let pid: i32 = r.get(0);
                let user: String = r.get(1);
                let app: String = r.get(2);
                let addr: String = r.get(3);
                let since: String = r.get(4);
                let who = if app.is_empty() { self.recorded_holder(job, pid).await } else { format!("{app:?}") };
                format!("{who} (server pid {pid}, user {user}, from {addr}, connected since {since})")
            }
            _ => "another session (it could not be identified)".to_string(),
        };
        Err(Error::Locked { job: job.to_string(), holder })
    }

    /// Writes who holds the job's lock, replacing the row of the run before (we hold the lock,
    /// so that run has ended).
    async fn record_holder(&self, job: &str, server_pid: i32) -> Result<(), Error> {
        let runs = self.table("runs");
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        self.client()
            .execute(&format!("DELETE FROM {runs} WHERE job = $1"), &[&job])
            .bounded(self, "recording the job lock's holder")
            .await?;
        self.client()
            .execute(
                &format!("INSERT INTO {runs} (job, server_pid, host, pid, started_at) VALUES ($1, $2, $3, $4, now())"),
                &[&job, &server_pid, &crate::host_name(), &pid],
            )
            .bounded(self, "recording the job lock's holder")
            .await?;
        Ok(())
    }

    /// Names the lock holder where the server shows no application name (8.x has none): the
    /// gptransfer process that recorded itself on taking the lock from that server process.
    /// The holder writes its row just after taking the lock, so a missing row is looked for
    /// again for a moment before the holder is called unknown.
    async fn recorded_holder(&self, job: &str, server_pid: i32) -> String {
        let sql = format!(
            "SELECT host, pid, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') FROM {} WHERE job = $1 AND server_pid = $2",
            self.table("runs")
        );
        for _ in 0..20 {
            match self.client().query_opt(&sql, &[&job, &server_pid]).bounded(self, "naming the lock holder").await {
                Ok(Some(r)) => {
                    let host: String = r.get(0);
                    let pid: i32 = r.get(1);
                    let since: String = r.get(2);
                    return format!("gptransfer pid {pid} host {host} (running since {since})");
                }
                Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                Err(_) => break,
            }
        }
        "a session without an application name that recorded no gptransfer run".to_string()
    }

    /// Marks `running` rows of this job as failed: we hold the job's lock, so the process that
    /// wrote them is gone (killed, or its machine died) and its window was rolled back.
    async fn close_abandoned(&self, job: &str) -> Result<(), Error> {
        let sql = format!(
            "UPDATE {} SET status = 'failed', finished_at = now(), \
             error = 'abandoned: the process running this window ended without finishing it (killed?); its rows were rolled back unless they had committed before this row (state on another cluster than the target): the next run loads the window again' \
             WHERE job = $1 AND status = 'running'",
            self.table("history")
        );
        self.client().execute(&sql, &[&job]).bounded(self, "closing abandoned history rows").await?;
        Ok(())
    }

    /// Releases a lock early (it is released anyway when the session ends).
    pub async fn release(&self, lock: JobLock) {
        let _ = self
            .client()
            .execute("SELECT pg_advisory_unlock($1, $2)", &[&NAMESPACE, &lock.key])
            .bounded(self, "releasing the job lock")
            .await;
        tracing::debug!(job = %lock.job, "job lock released");
    }
}
