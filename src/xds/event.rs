//! What a protocol step tells the outside world: plain values that feed logs, status and metrics.

use super::resource_type::ResourceType;
use super::subscription::Nack;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Subscribed {
        type_: ResourceType,
    },
    Sent {
        type_: ResourceType,
        version: String,
        nonce: String,
        resources: usize,
        removed: usize,
    },
    Acked {
        type_: ResourceType,
        version: String,
        nonce: String,
    },
    Nacked {
        type_: ResourceType,
        nack: Nack,
    },
    /// A request that needs no action: a stale nonce, or a type Switchyard does not serve.
    Ignored {
        type_url: String,
        reason: &'static str,
    },
}

/// The outcome of feeding one request or one snapshot change into a stream's state.
#[derive(Debug)]
pub struct Step<R> {
    pub responses: Vec<R>,
    pub events: Vec<Event>,
}

impl<R> Default for Step<R> {
    fn default() -> Step<R> {
        Step {
            responses: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<R> Step<R> {
    /// A step that only records that a request needed no action.
    pub fn ignored(type_url: &str, reason: &'static str) -> Step<R> {
        Step {
            responses: Vec::new(),
            events: vec![Event::Ignored {
                type_url: type_url.to_string(),
                reason,
            }],
        }
    }

    pub fn merge(&mut self, other: Step<R>) {
        self.responses.extend(other.responses);
        self.events.extend(other.events);
    }
}
