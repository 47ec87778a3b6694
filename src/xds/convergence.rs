//! How long one proxy took to catch up with a change of configuration: from the moment the change was accepted
//! to the moment the proxy acknowledged everything it was sent because of it. Istio calls this a proxy's
//! convergence time (`pilot_proxy_convergence_time`); here it is measured up to the ACK, not only the send.
//!
//! Fed with the events of each step of a stream, free of I/O and clocks: the stream task says when the change
//! it is answering was accepted, and gets that moment back once the proxy is up to date.
//!
//! - Only a change that sends the proxy something starts a measurement: a proxy for which nothing changed is
//!   not pushed and not measured (neither is the first answer of a new stream, which follows no change).
//! - While the proxy has not caught up, anything sent to it is awaited too (the endpoints Envoy asks for after
//!   new clusters, say), and a further change does not restart the clock: the proxy is up to date when it has
//!   acknowledged everything since the first change it had not caught up with.
//! - A rejection (NACK) of an awaited response ends the measurement without one: the proxy runs the last good
//!   configuration, not the change (rejections have their own counter).

use tokio::time::Instant;

use super::event::Event;
use super::resource_type::PerType;

/// One stream's measurement in progress, if any.
#[derive(Debug, Default)]
pub struct Convergence {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// When the first change the proxy has not caught up with was accepted.
    since: Instant,
    /// Per type, the nonce of the response still to be acknowledged.
    awaiting: PerType<Option<String>>,
}

impl Convergence {
    /// Records a step's events. `change`: when the configuration change this step answers was accepted (`None`
    /// for a step that answers a request, or a generation that does not say). Returns when the change began
    /// once the proxy has acknowledged all of it.
    pub fn record(&mut self, change: Option<Instant>, events: &[Event]) -> Option<Instant> {
        if let Some(accepted) = change {
            let sends = events.iter().any(|e| matches!(e, Event::Sent { .. }));
            if sends && self.pending.is_none() {
                self.pending = Some(Pending {
                    since: accepted,
                    awaiting: PerType::default(),
                });
            }
        }
        let pending = self.pending.as_mut()?;
        for event in events {
            match event {
                Event::Sent { type_, nonce, .. } => pending.awaiting[*type_] = Some(nonce.clone()),
                Event::Acked { type_, nonce, .. } => {
                    if pending.awaiting[*type_].as_deref() == Some(nonce.as_str()) {
                        pending.awaiting[*type_] = None;
                    }
                }
                Event::Nacked { type_, .. } => {
                    if pending.awaiting[*type_].is_some() {
                        self.pending = None;
                        return None;
                    }
                }
                Event::Subscribed { .. } | Event::Ignored { .. } => {}
            }
        }
        if pending.awaiting.iter().all(|(_, nonce)| nonce.is_none()) {
            return self.pending.take().map(|p| p.since);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::xds::subscription::Nack;
    use crate::xds::ResourceType::{self, Cluster, Endpoint, Route};

    fn sent(t: ResourceType, nonce: &str) -> Event {
        Event::Sent {
            type_: t,
            version: format!("v{nonce}"),
            nonce: nonce.to_string(),
            resources: 1,
            removed: 0,
        }
    }

    fn acked(t: ResourceType, nonce: &str) -> Event {
        Event::Acked {
            type_: t,
            version: format!("v{nonce}"),
            nonce: nonce.to_string(),
        }
    }

    fn nacked(t: ResourceType, nonce: &str) -> Event {
        Event::Nacked {
            type_: t,
            nack: Nack {
                nonce: nonce.to_string(),
                rejected_version: format!("v{nonce}"),
                kept_version: "v0".to_string(),
                message: "no".to_string(),
            },
        }
    }

    #[test]
    fn a_change_is_measured_once_the_proxy_acknowledged_every_type_it_was_sent() {
        let at = Instant::now();
        let mut c = Convergence::default();
        assert_eq!(
            c.record(Some(at), &[sent(Cluster, "1"), sent(Route, "2")]),
            None
        );
        assert_eq!(c.record(None, &[acked(Cluster, "1")]), None);
        assert_eq!(c.record(None, &[acked(Route, "2")]), Some(at));
        // Measured once: a later ACK of anything measures nothing.
        assert_eq!(c.record(None, &[acked(Route, "2")]), None);
    }

    #[test]
    fn a_change_that_sends_nothing_and_a_first_answer_are_not_measured() {
        let mut c = Convergence::default();
        assert_eq!(c.record(Some(Instant::now()), &[]), None);
        // A new stream's first answer follows a request, not a change.
        assert_eq!(c.record(None, &[sent(Cluster, "1")]), None);
        assert_eq!(c.record(None, &[acked(Cluster, "1")]), None);
    }

    #[test]
    fn what_is_sent_on_request_while_catching_up_is_awaited_too() {
        let at = Instant::now();
        let mut c = Convergence::default();
        c.record(Some(at), &[sent(Cluster, "1")]);
        // Envoy asks for the endpoints of its new clusters before it acknowledges them.
        assert_eq!(c.record(None, &[sent(Endpoint, "2")]), None);
        assert_eq!(c.record(None, &[acked(Cluster, "1")]), None);
        assert_eq!(c.record(None, &[acked(Endpoint, "2")]), Some(at));
    }

    #[test]
    fn a_superseded_response_is_not_the_one_awaited_and_a_second_change_keeps_the_first_start() {
        let first = Instant::now();
        let second = first + Duration::from_millis(5);
        let mut c = Convergence::default();
        c.record(Some(first), &[sent(Route, "1")]);
        c.record(Some(second), &[sent(Route, "2")]);
        assert_eq!(c.record(None, &[acked(Route, "1")]), None);
        assert_eq!(c.record(None, &[acked(Route, "2")]), Some(first));
    }

    #[test]
    fn a_rejected_change_is_not_measured() {
        let mut c = Convergence::default();
        c.record(
            Some(Instant::now()),
            &[sent(Cluster, "1"), sent(Route, "2")],
        );
        assert_eq!(c.record(None, &[nacked(Route, "2")]), None);
        assert_eq!(c.record(None, &[acked(Cluster, "1")]), None);
        // The next change starts afresh.
        let next = Instant::now();
        c.record(Some(next), &[sent(Route, "3")]);
        assert_eq!(c.record(None, &[acked(Route, "3")]), Some(next));
    }
}
