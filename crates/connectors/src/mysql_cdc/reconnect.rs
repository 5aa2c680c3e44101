//! When and how often a lost binlog connection is retried.
//!
//! Why it exists: a binlog connection dies for ordinary reasons — the server restarts, an
//! operator or a proxy kills the dump thread (`KILL <id>`), the network drops, or the server
//! still holds the previous connection of the same `server_id` (error 4052). The source then
//! starts a new reader at the end of the last transaction it handed out
//! ([`super::BinlogReader::resume_position`]): a transaction received only in part is discarded
//! and read again whole, so nothing is lost and nothing is handed out twice.
//!
//! Policy: only errors that say the connection (not the data or the config) failed are retried
//! ([`ConnectorError::is_retryable`]); attempts wait 100 ms, doubling up to 5 s; after
//! `reconnect_timeout_secs` without a working stream the source gives up with a retryable
//! [`ConnectorError::MysqlQuery`] carrying the last cause, so a supervisor can restart it later
//! (it then resumes from the state file). A stream that works again — it delivers a
//! transaction, or stays up for [`STABLE_AFTER`] — resets the clock.

use std::time::{Duration, Instant};

use crate::error::ConnectorError;

/// First wait before a reconnect attempt.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// How long a new connection must stay up (without delivering a transaction) to count as
/// working again.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// True when a new connection has proven it works, so the give-up clock restarts: it handed
/// out a transaction, or stayed up for [`STABLE_AFTER`]. Surviving an idle poll proves nothing
/// (a proxy that kills every connection after a moment would keep the source retrying forever).
pub fn works_again(delivered_transactions: bool, up_for: Duration) -> bool {
    delivered_transactions || up_for >= STABLE_AFTER
}

/// True when reconnecting may help (the connection failed, not the data or the config).
pub fn worth_retrying(e: &ConnectorError) -> bool {
    e.is_retryable()
}

/// Backoff state from the first failure until a stream works again.
#[derive(Debug)]
pub struct Backoff {
    since: Instant,
    limit: Duration,
    next: Duration,
    attempts: u32,
    last_error: String,
}

impl Backoff {
    /// Starts after the failure `cause`; gives up `limit` after it.
    pub fn new(limit: Duration, cause: &ConnectorError) -> Self {
        Backoff {
            since: Instant::now(),
            limit,
            next: FIRST_DELAY,
            attempts: 0,
            last_error: cause.to_string(),
        }
    }

    /// Records another failed attempt.
    pub fn failed(&mut self, cause: &ConnectorError) {
        self.last_error = cause.to_string();
    }

    /// How long to wait before the next attempt, or the error to give up with once the limit
    /// is reached (the wait never ends past the limit).
    pub fn next_delay(&mut self) -> Result<Duration, ConnectorError> {
        let elapsed = self.since.elapsed();
        if elapsed >= self.limit {
            return Err(ConnectorError::MysqlQuery {
                operation: "reconnecting the binlog stream".into(),
                message: format!(
                    "no working binlog connection for {:.1}s after {} attempts; last error: {}",
                    elapsed.as_secs_f64(),
                    self.attempts,
                    self.last_error
                ),
                hint: "is the server up and reachable? Restart the reader when it is: it \
                       resumes from the state file (raise reconnect_timeout_secs to wait longer)"
                    .into(),
                retryable: true,
            });
        }
        let delay = self.next.min(self.limit - elapsed);
        self.next = (self.next * 2).min(MAX_DELAY);
        self.attempts += 1;
        Ok(delay)
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> ConnectorError {
        ConnectorError::MysqlQuery {
            operation: "binlog stream".into(),
            message: "the server closed the binlog stream".into(),
            hint: String::new(),
            retryable: true,
        }
    }

    #[test]
    fn only_data_or_a_long_life_proves_a_connection_works() {
        assert!(!works_again(false, Duration::from_millis(600)));
        assert!(works_again(true, Duration::from_millis(1)));
        assert!(works_again(false, STABLE_AFTER));
    }

    #[test]
    fn delays_double_up_to_the_cap_then_give_up_retryably() {
        let mut b = Backoff::new(Duration::from_secs(3600), &lost());
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay().unwrap()).collect();
        assert_eq!(delays[0], FIRST_DELAY);
        assert_eq!(delays[1], FIRST_DELAY * 2);
        assert_eq!(delays[7], MAX_DELAY);
        let mut b = Backoff::new(Duration::ZERO, &lost());
        let e = b.next_delay().unwrap_err();
        assert!(e.is_retryable());
        assert!(e.to_string().contains("closed the binlog stream"), "{e}");
        assert!(worth_retrying(&lost()));
        assert!(!worth_retrying(&ConnectorError::MysqlDecode {
            table: "d.t".into(),
            column: "c".into(),
            position: "f:1".into(),
            problem: "x".into(),
            hint: "",
        }));
    }
}
