//! State-of-the-World ADS for one stream, without I/O: requests and snapshots in, responses and events out.
//!
//! The classification of a request follows the outcomes Istio names (initial or reconnect, stale nonce,
//! NACK, ACK, re-subscribe), plus one Envoy quirk: after a cluster is re-created Envoy asks for its
//! endpoints again with the version and nonce it already acknowledged. Treating that as a plain ACK would
//! leave the cluster warming, so a repeated request for an already-acknowledged nonce is answered.

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::event::{Event, Step};
use super::outgoing::Outgoing;
use super::resource_type::{PerType, ResourceType};
use super::snapshot::Snapshot;
use super::subscription::{layer_ids, nack_message, Nack, ResourceNames, Sent, Subscription};

/// How a request is read. Pure function of the request and the subscription's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// The first request of a type on this stream (also after a reconnect, carrying the last version).
    Initial,
    /// Answers a response that has since been superseded; nothing to do.
    StaleNonce,
    /// Rejects the latest response. `names_changed`: it also asks for other names, which must be answered.
    Nack {
        nack: Nack,
        names_changed: bool,
    },
    Ack,
    /// Acknowledges, and asks again: new names, or the same nonce a second time.
    Resubscribe,
    /// Repeats the nonce of a rejected response with the version the proxy still runs: no acknowledgement.
    /// `names_changed`: it asks for other names, which must be answered.
    StillRejected {
        names_changed: bool,
    },
}

pub fn classify(
    sub: Option<&Subscription>,
    req: &DiscoveryRequest,
    t: ResourceType,
) -> RequestKind {
    let Some(sub) = sub else {
        return RequestKind::Initial;
    };
    if req.response_nonce.is_empty() {
        return RequestKind::Initial;
    }
    let Some(sent_version) = sub.sent_version_of(&req.response_nonce) else {
        return RequestKind::StaleNonce;
    };
    let names_changed = ResourceNames::from_sotw(t, &req.resource_names) != sub.names;
    if let Some(status) = &req.error_detail {
        return RequestKind::Nack {
            nack: Nack {
                nonce: req.response_nonce.clone(),
                rejected_version: sent_version.to_string(),
                kept_version: req.version_info.clone(),
                message: nack_message(&status.message),
            },
            names_changed,
        };
    }
    // Envoy reports the version it runs: after a rejection it repeats the nonce with the older version.
    if req.version_info != sent_version {
        return RequestKind::StillRejected { names_changed };
    }
    let already_acked = sub
        .acked
        .as_ref()
        .is_some_and(|a| a.nonce == req.response_nonce);
    if already_acked || names_changed {
        RequestKind::Resubscribe
    } else {
        RequestKind::Ack
    }
}

/// One SotW stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    subs: PerType<Option<Subscription>>,
    nonces: u64,
}

impl SotwStream {
    pub fn subscription(&self, t: ResourceType) -> Option<&Subscription> {
        self.subs[t].as_ref()
    }

    /// Handles one request. `snapshot` is `None` while the proxy's identity cannot be served: the
    /// subscription is still recorded and answered once a snapshot exists.
    pub fn on_request(
        &mut self,
        req: &DiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<Outgoing<DiscoveryResponse>> {
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            return Step::ignored(&req.type_url, "type not served");
        };
        let mut step = Step::default();
        let kind = classify(self.subs[t].as_ref(), req, t);
        let force = match kind {
            RequestKind::StaleNonce => {
                return Step::ignored(&req.type_url, "stale nonce");
            }
            RequestKind::Nack {
                nack,
                names_changed,
            } => {
                if let Some(sub) = self.subs[t].as_mut() {
                    sub.last_nack = Some(nack.clone());
                    sub.names = ResourceNames::from_sotw(t, &req.resource_names);
                }
                step.events.push(Event::Nacked { type_: t, nack });
                // The proxy keeps its last good config; sending the same version again would only be
                // rejected again. New names are answered; otherwise the next change is pushed as usual.
                if !names_changed {
                    return step;
                }
                true
            }
            RequestKind::StillRejected { names_changed } => {
                if !names_changed {
                    return Step::ignored(&req.type_url, "repeats a rejected response");
                }
                if let Some(sub) = self.subs[t].as_mut() {
                    sub.names = ResourceNames::from_sotw(t, &req.resource_names);
                }
                true
            }
            RequestKind::Initial => {
                let mut sub = Subscription::new(ResourceNames::from_sotw(t, &req.resource_names));
                if !req.version_info.is_empty() {
                    // A reconnecting proxy reports what it runs; remember it as acknowledged.
                    sub.acked = Some(Sent {
                        nonce: String::new(),
                        version: req.version_info.clone(),
                    });
                }
                self.subs[t] = Some(sub);
                step.events.push(Event::Subscribed { type_: t });
                true
            }
            RequestKind::Ack | RequestKind::Resubscribe => {
                let resubscribe = kind == RequestKind::Resubscribe;
                if let Some(sub) = self.subs[t].as_mut() {
                    let fresh_ack = sub
                        .acked
                        .as_ref()
                        .is_none_or(|a| a.nonce != req.response_nonce);
                    sub.acked = Some(Sent {
                        nonce: req.response_nonce.clone(),
                        version: req.version_info.clone(),
                    });
                    sub.names = ResourceNames::from_sotw(t, &req.resource_names);
                    if fresh_ack {
                        step.events.push(Event::Acked {
                            type_: t,
                            version: req.version_info.clone(),
                            nonce: req.response_nonce.clone(),
                        });
                    }
                }
                resubscribe
            }
        };
        if let Some(snapshot) = snapshot {
            step.merge(self.respond(t, snapshot, force));
        }
        step
    }

    /// Pushes whatever changed, type by type in push order.
    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Outgoing<DiscoveryResponse>> {
        let mut step = Step::default();
        for t in ResourceType::ALL {
            step.merge(self.respond(t, snapshot, false));
        }
        step
    }

    /// Sends the current state of type `t` if it differs from what was last sent, or unconditionally when
    /// `force` (the proxy asked).
    fn respond(
        &mut self,
        t: ResourceType,
        snapshot: &Snapshot,
        force: bool,
    ) -> Step<Outgoing<DiscoveryResponse>> {
        let mut step = Step::default();
        let Some(sub) = self.subs[t].as_mut() else {
            return step;
        };
        // The same layers as last time: nothing can differ, and no resource needs looking at.
        let layers = layer_ids(snapshot, t);
        if !force && sub.last_sent.is_some() && sub.answered_from == layers {
            return step;
        }
        let selected = sub.names.select(snapshot, t);
        let version = sub.names.version(snapshot, t);
        sub.answered_from = layers;
        let unchanged = sub.last_sent.as_ref().is_some_and(|s| s.version == version);
        if unchanged && !force {
            return step;
        }
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        let response = Outgoing {
            message: DiscoveryResponse {
                version_info: version.clone(),
                type_url: t.type_url().to_string(),
                nonce: nonce.clone(),
                ..Default::default()
            },
            resources: selected.into_iter().cloned().collect(),
        };
        step.events.push(Event::Sent {
            type_: t,
            version: version.clone(),
            nonce: nonce.clone(),
            resources: response.resources.len(),
            removed: 0,
        });
        sub.last_sent = Some(Sent { nonce, version });
        step.responses.push(response);
        step
    }
}
