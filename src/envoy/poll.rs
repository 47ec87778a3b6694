use std::time::Duration;

use tokio::time::Instant;

use super::error::EnvoyError;

/// How often conditions on a local Envoy are re-checked: admin calls on loopback take well under a millisecond.
const INTERVAL: Duration = Duration::from_millis(50);

/// A deadline-bounded retry loop: check, then `next(what was seen)` until the check passes or time is up.
pub(crate) struct Poll<'a> {
    what: &'a str,
    started: Instant,
    deadline: Instant,
}

impl<'a> Poll<'a> {
    pub(crate) fn new(what: &'a str, deadline: Instant) -> Self {
        Poll {
            what,
            started: Instant::now(),
            deadline,
        }
    }

    /// Waits for the next attempt; once the deadline has passed, fails naming the condition and `last_seen`.
    /// The last attempt happens at the deadline itself.
    pub(crate) async fn next(&self, last_seen: String) -> Result<(), EnvoyError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(EnvoyError::Timeout {
                what: self.what.to_string(),
                waited: now - self.started,
                last_seen,
                log_tail: None,
            });
        }
        tokio::time::sleep_until((now + INTERVAL).min(self.deadline)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn times_out_with_the_last_value_seen() {
        let deadline = Instant::now() + Duration::from_millis(120);
        let poll = Poll::new("the answer", deadline);
        let mut attempts = 0;
        let err = loop {
            attempts += 1;
            if let Err(e) = poll.next(format!("attempt {attempts}")).await {
                break e;
            }
        };
        // At 0 ms, about 50 and 100 ms, and at the deadline; a slow machine may skip one in between.
        assert!((2..=4).contains(&attempts), "{attempts} attempts");
        let msg = err.to_string();
        let last = format!("last seen: attempt {attempts}");
        assert!(
            msg.contains("waiting for the answer") && msg.contains(&last),
            "{msg}"
        );
        assert!(Instant::now() >= deadline);
    }
}
