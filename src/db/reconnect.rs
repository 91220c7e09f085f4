//! `create_pool(retry=fastio.Retry(...))`: pool-level statements retried,
//! with the policy's backoff, after errors that mean "try again on another
//! connection": the connection broke or could not be made (a server restart),
//! or the server rolled the statement back to resolve a conflict
//! (serialization failure, deadlock, SQLite busy).

use std::time::Instant;

use crate::errors::{Error, Result};
use crate::retry::RetryPolicy;

/// Whether `err` is worth another attempt on a fresh connection.
pub(crate) fn retryable(err: &Error) -> bool {
    match err {
        Error::Connection(_) => true,
        Error::Postgres(info) => {
            let code = info.sqlstate();
            code.starts_with("08") // connection exception
                || matches!(
                    code,
                    "40001" // serialization_failure
                        | "40P01" // deadlock_detected
                        | "57P01" // admin_shutdown
                        | "57P02" // crash_shutdown
                        | "57P03" // cannot_connect_now (starting up)
                )
        }
        Error::MySql(info) => matches!(
            info.errno,
            1213 // ER_LOCK_DEADLOCK
                | 1205 // ER_LOCK_WAIT_TIMEOUT
                | 1053 // ER_SERVER_SHUTDOWN
                | 1927 // ER_CONNECTION_KILLED
                | 2006 // CR_SERVER_GONE_ERROR
                | 2013 // CR_SERVER_LOST
        ),
        Error::Sqlite(info) => info
            .code
            .as_deref()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)), // BUSY, LOCKED
        Error::Interface(msg) => msg.starts_with("protocol error") || msg.contains("closed"),
        _ => false,
    }
}

/// Attempts of one statement under a retry policy (none: a single attempt).
pub(crate) struct Attempts<'a> {
    policy: Option<&'a RetryPolicy>,
    attempt: u32,
    started: Instant,
}

impl<'a> Attempts<'a> {
    pub(crate) fn new(policy: Option<&'a RetryPolicy>) -> Self {
        Attempts {
            policy,
            attempt: 1,
            started: Instant::now(),
        }
    }

    /// After a failed attempt: waits out the backoff and returns true if
    /// another attempt should be made.
    pub(crate) async fn again(&mut self, err: &Error) -> bool {
        let Some(policy) = self.policy else {
            return false;
        };
        if self.attempt >= policy.attempts || !retryable(err) {
            return false;
        }
        let wait = policy.delay(self.attempt, None);
        if policy
            .deadline
            .is_some_and(|d| self.started.elapsed() + wait >= d)
        {
            return false;
        }
        log::debug!(
            "retrying a statement in {wait:?} after: {err} (attempt {})",
            self.attempt
        );
        tokio::time::sleep(wait).await;
        self.attempt += 1;
        true
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// [`retryable`], or the policy's attempts (or deadline) are used up.
pub(crate) async fn retried<T, F>(
    policy: Option<&RetryPolicy>,
    mut attempt: impl FnMut() -> F,
) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut attempts = Attempts::new(policy);
    loop {
        match attempt().await {
            Err(e) if attempts.again(&e).await => continue,
            out => return out,
        }
    }
}
